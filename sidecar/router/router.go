package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
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
	// Metrics holds every cluster's resilience counters; a table
	// compiled with a previous one shares its registry.
	Metrics *metrics.Registry
	log     *slog.Logger
}

// Option configures Compile.
type Option func(*Table)

// WithMetrics makes the table count into reg (default: the previous
// table's registry, or a new one).
func WithMetrics(reg *metrics.Registry) Option { return func(t *Table) { t.Metrics = reg } }

// WithLogger sets the logger of outlier detection (ejections).
func WithLogger(log *slog.Logger) Option { return func(t *Table) { t.log = log } }

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
	// TLS: the port accepts mTLS; Plaintext: it accepts plaintext too
	// (PERMISSIVE) or only (no transport socket).
	TLS, Plaintext bool
}

// Routes is a compiled route configuration.
type Routes struct {
	Name  string
	hosts map[string]*VirtualHost
	// wild holds "*.<suffix>" domains by ".<suffix>" (Egress contract).
	wild map[string]*VirtualHost
	// addrs are egress CONNECT targets by address (Weft virtual host
	// metadata egress_addresses), tried in order.
	addrs   []addrHost
	anyHost *VirtualHost
}

// addrHost is one "<cidr>:<port>" of an egress virtual host.
type addrHost struct {
	prefix netip.Prefix
	port   uint16
	vh     *VirtualHost
}

// VirtualHost returns the virtual host for a Host header value (compared
// lower-cased): an exact domain, else a "*.<suffix>" domain with exactly
// one label in place of "*", else (an IP:port) an egress virtual host
// whose addresses contain it, else "*", else nil.
func (rt *Routes) VirtualHost(host string) *VirtualHost {
	host = lower(host)
	if vh := rt.hosts[host]; vh != nil {
		return vh
	}
	if len(rt.wild) > 0 {
		if i := strings.IndexByte(host, '.'); i > 0 {
			if vh := rt.wild[host[i:]]; vh != nil {
				return vh
			}
		}
	}
	if len(rt.addrs) > 0 {
		if ap, err := netip.ParseAddrPort(host); err == nil {
			ip := ap.Addr().Unmap()
			for _, a := range rt.addrs {
				if a.port == ap.Port() && a.prefix.Contains(ip) {
					return a.vh
				}
			}
		}
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

// Compile builds the table for s. prev (may be nil) lends the clusters that
// did not change.
func Compile(s *xdsclient.Snapshot, prev *Table, opts ...Option) (*Table, error) {
	t := &Table{Clusters: make(map[string]*Cluster, len(s.Clusters)), Snapshot: s}
	t.Metrics, t.log = metrics.NewRegistry(), slog.New(slog.DiscardHandler)
	if prev != nil {
		t.Metrics, t.log = prev.Metrics, prev.log
	}
	for _, o := range opts {
		o(t)
	}
	var cerrs []error
	for name, c := range s.Clusters {
		var as *xdsclient.Assignment
		if c.EDSName != "" {
			as = s.Endpoints[c.EDSName]
		} else {
			as = c.Static
		}
		var old *Cluster
		sameRes := false // old's cluster resource is c's (decoded at most once)
		if prev != nil {
			old = prev.Clusters[name]
			sameRes = old != nil && (old.cluster == c || old.cluster.SameResource(c))
			if sameRes && sameAssignment(old, as) {
				t.Clusters[name] = old.with(c, as)
				continue
			}
		}
		cl, err := compileCluster(c, as, old, sameRes, t.Metrics, t.log)
		if err != nil {
			cerrs = append(cerrs, fmt.Errorf("cluster %q: %w", name, err))
			continue
		}
		t.Clusters[name] = cl
	}
	if len(cerrs) > 0 {
		return nil, fmt.Errorf("router: %w", errors.Join(cerrs...))
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
			ch := &Chain{Name: fc.Name, Port: fc.DestinationPort, TLS: fc.TLS != nil, Plaintext: fc.Plaintext}
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

func sameAssignment(old *Cluster, as *xdsclient.Assignment) bool {
	switch {
	case old.assignment == as:
		return true
	case old.assignment == nil || as == nil:
		return false
	}
	return old.assignment.Equal(as)
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
	var mtls *lb.MTLS
	if c.TLS != nil {
		mtls = &lb.MTLS{PeerIDs: c.TLS.PeerIDs, Key: c.TLS.Key}
	}
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
			Locality:       lb.Locality{Region: e.Region, Zone: e.Zone, SubZone: e.SubZone},
			ConnectTimeout: c.ConnectTimeout,
			MTLS:           mtls,
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
		for _, v := range vh.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataEgressAddresses].GetListValue().GetValues() {
			a, err := parseAddrHost(v.GetStringValue())
			if err != nil {
				errs = append(errs, fmt.Errorf("virtual host %q: %s: %w", vh.GetName(), mesh.MetadataEgressAddresses, err))
				continue
			}
			a.vh = cvh
			out.addrs = append(out.addrs, a)
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
			case strings.HasPrefix(d, "*.") && !strings.Contains(d[1:], "*"):
				if out.wild == nil {
					out.wild = map[string]*VirtualHost{}
				}
				if out.wild[d[1:]] != nil {
					errs = append(errs, fmt.Errorf("virtual host %q: domain %q is already used by %q", vh.GetName(), d, out.wild[d[1:]].Name))
					continue
				}
				out.wild[d[1:]] = cvh
			case strings.Contains(d, "*"):
				errs = append(errs, fmt.Errorf("virtual host %q: domain %q: wildcards other than \"*\" and \"*.<suffix>\" are not supported", vh.GetName(), d))
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

// parseAddrHost reads "<cidr>:<port>" (IPv6 in brackets).
func parseAddrHost(s string) (addrHost, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return addrHost{}, fmt.Errorf("%q is not <cidr>:<port>: %w", s, err)
	}
	pfx, err := netip.ParsePrefix(h)
	if err != nil {
		return addrHost{}, fmt.Errorf("%q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return addrHost{}, fmt.Errorf("%q: bad port", s)
	}
	return addrHost{prefix: pfx.Masked(), port: uint16(port)}, nil
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

// lower returns s lower-cased, without allocating when it already is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
