package router

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Table is one compiled configuration.
type Table struct {
	// Outbound and Inbound are the two listeners; nil when LDS has none.
	Outbound *Listener
	Inbound  *Listener
	// Clusters by name.
	Clusters map[string]*Cluster
	// Snapshot is the configuration the table was compiled from.
	Snapshot *xdsclient.Snapshot
}

// Listener is a compiled listener.
type Listener struct {
	Name string
	// Address is host:port to bind.
	Address string
	byPort  map[uint32]*Chain
	anyPort *Chain
}

// Chain returns the filter chain for a destination port: the chain for that
// port, else the chain that matches any port, else nil.
func (l *Listener) Chain(port uint32) *Chain {
	if c := l.byPort[port]; c != nil {
		return c
	}
	return l.anyPort
}

// Chain is a compiled filter chain.
type Chain struct {
	Name string
	// Port is the destination port it matches (0: any).
	Port uint32
	// Routes is nil while the chain's RDS route configuration is missing.
	Routes *Routes
}

// Routes is a compiled route configuration.
type Routes struct {
	Name    string
	hosts   map[string]*VirtualHost
	anyHost *VirtualHost
}

// VirtualHost returns the virtual host for a Host header value (compared
// lower-cased and exactly), or nil.
func (rt *Routes) VirtualHost(host string) *VirtualHost {
	if vh := rt.hosts[lower(host)]; vh != nil {
		return vh
	}
	return rt.anyHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name   string
	Routes []*Route
}

// Route returns the first route that matches r, or nil.
func (vh *VirtualHost) Route(r *http.Request) *Route {
	for _, rt := range vh.Routes {
		if rt.Match.Matches(r) {
			return rt
		}
	}
	return nil
}

// Route is a compiled route.
type Route struct {
	Match Match
	// ClusterName is the cluster the route sends to; Cluster is nil when
	// the cluster is gone (a route answers 503 until the control plane
	// removes it).
	ClusterName string
	Cluster     *Cluster
}

// Match is the request matcher of a route. Exactly one of Prefix and Path
// applies: Path when PathExact is set.
type Match struct {
	Prefix    string
	Path      string
	PathExact bool
	// CaseInsensitive compares the path ignoring case (case_sensitive:
	// false).
	CaseInsensitive bool
	// Headers must all match.
	Headers []HeaderMatch
}

// Matches reports whether r matches m.
func (m *Match) Matches(r *http.Request) bool {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	switch {
	case m.PathExact && m.CaseInsensitive:
		if !strings.EqualFold(p, m.Path) {
			return false
		}
	case m.PathExact:
		if p != m.Path {
			return false
		}
	case m.CaseInsensitive:
		if len(p) < len(m.Prefix) || !strings.EqualFold(p[:len(m.Prefix)], m.Prefix) {
			return false
		}
	default:
		if !strings.HasPrefix(p, m.Prefix) {
			return false
		}
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r.Header) {
			return false
		}
	}
	return true
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	// Name is the canonical header name.
	Name string
	Kind HeaderMatchKind
	// Value is compared according to Kind (unused for Present).
	Value      string
	IgnoreCase bool
	// Invert negates the result.
	Invert bool
}

// HeaderMatchKind says how a HeaderMatch compares.
type HeaderMatchKind int

// Header match kinds.
const (
	HeaderPresent HeaderMatchKind = iota
	HeaderExact
	HeaderPrefix
	HeaderSuffix
	HeaderContains
)

func (h *HeaderMatch) matches(hdr http.Header) bool {
	vs, present := hdr[h.Name]
	var ok bool
	if h.Kind == HeaderPresent {
		ok = present
	} else if present {
		// Several values are compared joined, as Envoy does.
		v := strings.Join(vs, ",")
		want := h.Value
		if h.IgnoreCase {
			v, want = strings.ToLower(v), strings.ToLower(want)
		}
		switch h.Kind {
		case HeaderExact:
			ok = v == want
		case HeaderPrefix:
			ok = strings.HasPrefix(v, want)
		case HeaderSuffix:
			ok = strings.HasSuffix(v, want)
		case HeaderContains:
			ok = strings.Contains(v, want)
		}
	}
	return ok != h.Invert
}

// Cluster is a compiled cluster.
type Cluster struct {
	Name   string
	Picker lb.Picker
	// from, for reuse across tables.
	cluster    *xdsclient.Cluster
	assignment *xdsclient.Assignment
}

// Compile builds the table for s. prev (may be nil) lends the clusters that
// did not change.
func Compile(s *xdsclient.Snapshot, prev *Table) (*Table, error) {
	t := &Table{Clusters: make(map[string]*Cluster, len(s.Clusters)), Snapshot: s}
	for name, c := range s.Clusters {
		var as *xdsclient.Assignment
		if c.EDSName != "" {
			as = s.Endpoints[c.EDSName]
		} else {
			as = c.Static
		}
		if prev != nil {
			if old := prev.Clusters[name]; old != nil && sameCluster(old, c, as) {
				t.Clusters[name] = &Cluster{Name: name, Picker: old.Picker, cluster: c, assignment: as}
				continue
			}
		}
		t.Clusters[name] = &Cluster{Name: name, Picker: lb.NewRoundRobin(endpoints(c, as)), cluster: c, assignment: as}
	}
	var errs []error
	compiled := map[string]*Routes{}
	routes := func(name string, rc *route.RouteConfiguration) (*Routes, error) {
		if rc == nil {
			return nil, nil
		}
		if r := compiled[name]; r != nil {
			return r, nil
		}
		r, err := compileRoutes(rc, t.Clusters)
		if err != nil {
			return nil, err
		}
		compiled[name] = r
		return r, nil
	}
	for name, l := range s.Listeners {
		cl := &Listener{Name: name, Address: l.Address, byPort: map[uint32]*Chain{}}
		for _, fc := range l.Chains {
			ch := &Chain{Name: fc.Name, Port: fc.DestinationPort}
			var err error
			if fc.Route != nil {
				ch.Routes, err = compileRoutes(fc.Route, t.Clusters)
			} else {
				ch.Routes, err = routes(fc.RouteName, s.Routes[fc.RouteName])
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("listener %q: filter chain %q: %w", name, fc.Name, err))
				continue
			}
			if fc.DestinationPort == 0 {
				cl.anyPort = ch
			} else {
				cl.byPort[fc.DestinationPort] = ch
			}
		}
		switch name {
		case mesh.ListenerOutbound:
			t.Outbound = cl
		case mesh.ListenerInbound:
			t.Inbound = cl
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("router: %w", errors.Join(errs...))
	}
	return t, nil
}

func sameCluster(old *Cluster, c *xdsclient.Cluster, as *xdsclient.Assignment) bool {
	if old.cluster != c && !proto.Equal(old.cluster.Resource, c.Resource) {
		return false
	}
	switch {
	case old.assignment == as:
		return true
	case old.assignment == nil || as == nil:
		return false
	}
	return proto.Equal(old.assignment.Resource, as.Resource)
}

// endpoints converts an assignment: the endpoints of the highest priority
// (lowest number) that has a usable one.
func endpoints(c *xdsclient.Cluster, as *xdsclient.Assignment) []*lb.Endpoint {
	if as == nil {
		return nil
	}
	best, found := uint32(0), false
	for _, e := range as.Endpoints {
		if lb.Usable(e.Health) && (!found || e.Priority < best) {
			best, found = e.Priority, true
		}
	}
	var out []*lb.Endpoint
	for _, e := range as.Endpoints {
		if found && e.Priority != best {
			continue
		}
		ep := &lb.Endpoint{
			Addr:           net.JoinHostPort(e.IP, strconv.FormatUint(uint64(e.Port), 10)),
			TargetPort:     strconv.FormatUint(uint64(e.Port), 10),
			Workload:       e.Workload,
			Identity:       e.Identity,
			Weight:         e.Weight,
			Health:         e.Health,
			ConnectTimeout: c.ConnectTimeout,
		}
		if e.TunnelPort != 0 {
			ep.TunnelAddr = net.JoinHostPort(e.IP, strconv.FormatUint(uint64(e.TunnelPort), 10))
		}
		out = append(out, ep)
	}
	return out
}

func compileRoutes(rc *route.RouteConfiguration, clusters map[string]*Cluster) (*Routes, error) {
	out := &Routes{Name: rc.GetName(), hosts: map[string]*VirtualHost{}}
	var errs []error
	for _, vh := range rc.GetVirtualHosts() {
		cvh, err := compileVirtualHost(vh, clusters)
		if err != nil {
			errs = append(errs, fmt.Errorf("virtual host %q: %w", vh.GetName(), err))
			continue
		}
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if out.anyHost != nil {
					errs = append(errs, fmt.Errorf("virtual host %q: domain \"*\" is already used by %q", vh.GetName(), out.anyHost.Name))
					continue
				}
				out.anyHost = cvh
			case strings.Contains(d, "*"):
				errs = append(errs, fmt.Errorf("virtual host %q: domain %q: wildcards other than \"*\" are not supported", vh.GetName(), d))
			case out.hosts[d] != nil:
				errs = append(errs, fmt.Errorf("virtual host %q: domain %q is already used by %q", vh.GetName(), d, out.hosts[d].Name))
			default:
				out.hosts[d] = cvh
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("route %q: %w", rc.GetName(), errors.Join(errs...))
	}
	return out, nil
}

func compileVirtualHost(vh *route.VirtualHost, clusters map[string]*Cluster) (*VirtualHost, error) {
	out := &VirtualHost{Name: vh.GetName()}
	if vh.GetRequireTls() != route.VirtualHost_NONE {
		return nil, errors.New("require_tls: not supported")
	}
	for i, r := range vh.GetRoutes() {
		cr, err := compileRoute(r, clusters)
		if err != nil {
			return nil, fmt.Errorf("route %d (%q): %w", i, r.GetName(), err)
		}
		out.Routes = append(out.Routes, cr)
	}
	return out, nil
}

func compileRoute(r *route.Route, clusters map[string]*Cluster) (*Route, error) {
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, err
	}
	a := r.GetRoute()
	if a == nil {
		return nil, fmt.Errorf("action: only route is supported, got %T", r.GetAction())
	}
	name := a.GetCluster()
	if name == "" {
		return nil, fmt.Errorf("route: only cluster is supported, got %T", a.GetClusterSpecifier())
	}
	switch {
	case a.GetPrefixRewrite() != "" || a.GetRegexRewrite() != nil || a.GetPathRewritePolicy() != nil:
		return nil, errors.New("route: path rewrites are not supported")
	case a.GetHostRewriteSpecifier() != nil:
		return nil, errors.New("route: host rewrites are not supported")
	}
	return &Route{Match: m, ClusterName: name, Cluster: clusters[name]}, nil
}

func compileMatch(rm *route.RouteMatch) (Match, error) {
	var m Match
	switch ps := rm.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		m.Prefix = ps.Prefix
	case *route.RouteMatch_Path:
		m.Path, m.PathExact = ps.Path, true
	default:
		return m, fmt.Errorf("match: %T is not supported (prefix and path only)", rm.GetPathSpecifier())
	}
	if cs := rm.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		m.CaseInsensitive = true
	}
	// Anything else that narrows a match would be ignored: refuse it.
	rest := proto.Clone(rm).(*route.RouteMatch)
	rest.PathSpecifier, rest.CaseSensitive, rest.Headers = nil, nil, nil
	if !proto.Equal(rest, &route.RouteMatch{}) {
		return m, errors.New("match: only prefix, path, case_sensitive and headers are supported")
	}
	for _, h := range rm.GetHeaders() {
		hm, err := compileHeader(h)
		if err != nil {
			return m, fmt.Errorf("match: header %q: %w", h.GetName(), err)
		}
		m.Headers = append(m.Headers, hm)
	}
	return m, nil
}

func compileHeader(h *route.HeaderMatcher) (HeaderMatch, error) {
	out := HeaderMatch{Name: http.CanonicalHeaderKey(h.GetName()), Invert: h.GetInvertMatch()}
	if strings.HasPrefix(h.GetName(), ":") {
		return out, errors.New("pseudo-headers are not supported")
	}
	if h.GetTreatMissingHeaderAsEmpty() {
		return out, errors.New("treat_missing_header_as_empty: not supported")
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_PresentMatch:
		out.Kind = HeaderPresent
		if !s.PresentMatch {
			out.Invert = !out.Invert
		}
	case *route.HeaderMatcher_ExactMatch:
		out.Kind, out.Value = HeaderExact, s.ExactMatch
	case *route.HeaderMatcher_PrefixMatch:
		out.Kind, out.Value = HeaderPrefix, s.PrefixMatch
	case *route.HeaderMatcher_SuffixMatch:
		out.Kind, out.Value = HeaderSuffix, s.SuffixMatch
	case *route.HeaderMatcher_ContainsMatch:
		out.Kind, out.Value = HeaderContains, s.ContainsMatch
	case *route.HeaderMatcher_StringMatch:
		out.IgnoreCase = s.StringMatch.GetIgnoreCase()
		switch p := s.StringMatch.GetMatchPattern().(type) {
		case *matcher.StringMatcher_Exact:
			out.Kind, out.Value = HeaderExact, p.Exact
		case *matcher.StringMatcher_Prefix:
			out.Kind, out.Value = HeaderPrefix, p.Prefix
		case *matcher.StringMatcher_Suffix:
			out.Kind, out.Value = HeaderSuffix, p.Suffix
		case *matcher.StringMatcher_Contains:
			out.Kind, out.Value = HeaderContains, p.Contains
		default:
			return out, fmt.Errorf("string_match %T is not supported", p)
		}
	default:
		return out, fmt.Errorf("%T is not supported", s)
	}
	return out, nil
}

// lower returns s lower-cased, without allocating when it already is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
