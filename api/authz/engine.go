package authz

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsproto"
	rbacconfig "github.com/weftmesh/weft/api/xdsproto/envoy/config/rbac/v3"
	routev3 "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	rbacfilter "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/weftmesh/weft/api/xdsproto/envoy/type/matcher/v3"
)

// Filter is one RBAC HTTP filter of a filter chain: its HttpFilter name and
// its typed config, an envoy.extensions.filters.http.rbac.v3.RBAC as any Go
// type of that message: the trimmed one of api/xdsproto (the sidecar's) is
// read as it is, another (go-control-plane's: the control plane and weftctl)
// through its wire form.
type Filter struct {
	Name   string
	Config proto.Message
}

// rbacConfig returns c as the trimmed RBAC type.
func rbacConfig(c proto.Message) (*rbacfilter.RBAC, error) {
	if r, ok := c.(*rbacfilter.RBAC); ok {
		return r, nil
	}
	r := &rbacfilter.RBAC{}
	if got, want := c.ProtoReflect().Descriptor().FullName(), xdsproto.EnvoyName(r.ProtoReflect().Descriptor()); got != want {
		return nil, fmt.Errorf("config is a %s, want %s", got, want)
	}
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return r, nil
}

// Request is what a decision looks at. Principal is the verified peer
// SPIFFE ID ("" when the connection has no verified certificate); Source is
// the connection's remote address; DestinationIP/Port the address the
// request was for (the inbound: the workload port). Path is the normalized
// path without the query. Headers are the request headers (canonical keys,
// as net/http keeps them); the pseudo-headers :method, :authority and
// :path are read from the fields above.
type Request struct {
	Principal       string
	Source          netip.Addr
	DestinationIP   netip.Addr
	DestinationPort uint32
	Method          string
	Authority       string
	Path            string
	Headers         http.Header
}

// header returns the value of a header by its lower-case name and its
// canonical key (precomputed at compile time).
func (r *Request) header(name, key string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Authority, true
	case ":path":
		return r.Path, true
	}
	v := r.Headers[key]
	if v == nil {
		return "", false
	}
	if len(v) == 1 {
		return v[0], true
	}
	return strings.Join(v, ","), true
}

// Decision is the outcome of Evaluate. Filter and Policy name what decided:
// for a denial, the DENY policy that matched or DefaultDeny(filter) when an
// ALLOW filter matched nothing; for an allowance, the last ALLOW policy
// that matched ("" when no ALLOW filter ran). Audit is the first matching
// policy of a LOG filter, if any.
type Decision struct {
	Allowed bool
	Filter  string
	Policy  string
	Audit   string
}

// DefaultDeny is the policy name reported when an ALLOW filter matched no
// policy: "<filter name>:default-deny".
func DefaultDeny(filter string) string { return filter + ":default-deny" }

// Engine is the compiled RBAC filters of one filter chain. It is immutable.
type Engine struct {
	filters []compiledFilter
}

type compiledFilter struct {
	name     string
	action   rbacconfig.RBAC_Action
	enforce  bool // false: the filter has no rules (Envoy: no enforcement)
	policies []compiledPolicy
	deny     string // DefaultDeny(name), precomputed
}

type compiledPolicy struct {
	name        string
	permissions []rule
	principals  []rule
}

// Compile compiles the RBAC filters of one chain, in filter order. A nil or
// empty list gives an Engine that allows everything.
func Compile(filters []Filter) (*Engine, error) {
	e := &Engine{}
	for i, f := range filters {
		cf, err := compileFilter(f)
		if err != nil {
			return nil, fmt.Errorf("authz: rbac filter %d (%q): %w", i, f.Name, err)
		}
		e.filters = append(e.filters, cf)
	}
	return e, nil
}

func compileFilter(f Filter) (compiledFilter, error) {
	cf := compiledFilter{name: f.Name, deny: DefaultDeny(f.Name)}
	if f.Config == nil || !f.Config.ProtoReflect().IsValid() {
		return cf, errors.New("config is missing")
	}
	c, err := rbacConfig(f.Config)
	if err != nil {
		return cf, err
	}
	switch {
	case c.GetMatcher() != nil:
		return cf, errors.New("matcher: not supported")
	case c.GetShadowRules() != nil || c.GetShadowMatcher() != nil:
		return cf, errors.New("shadow_rules: not supported")
	}
	rules := c.GetRules()
	if rules == nil {
		return cf, nil
	}
	cf.enforce = true
	cf.action = rules.GetAction()
	switch cf.action {
	case rbacconfig.RBAC_ALLOW, rbacconfig.RBAC_DENY, rbacconfig.RBAC_LOG:
	default:
		return cf, fmt.Errorf("rules.action: %s is not supported", cf.action)
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := rules.GetPolicies()[n]
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
			return cf, fmt.Errorf("policy %q: condition: not supported", n)
		}
		cp := compiledPolicy{name: n}
		var err error
		if cp.permissions, err = compileAll("permissions", p.GetPermissions(), compilePermission); err != nil {
			return cf, fmt.Errorf("policy %q: %w", n, err)
		}
		if cp.principals, err = compileAll("principals", p.GetPrincipals(), compilePrincipal); err != nil {
			return cf, fmt.Errorf("policy %q: %w", n, err)
		}
		if len(cp.permissions) == 0 || len(cp.principals) == 0 {
			return cf, fmt.Errorf("policy %q: needs at least one permission and one principal", n)
		}
		cf.policies = append(cf.policies, cp)
	}
	return cf, nil
}

// Evaluate decides r. It allocates nothing.
func (e *Engine) Evaluate(r *Request) Decision {
	d := Decision{Allowed: true}
	if e == nil {
		// No compiled policy where one was expected: fail closed.
		return Decision{Allowed: false, Filter: "", Policy: "authz:missing"}
	}
	for i := range e.filters {
		f := &e.filters[i]
		if !f.enforce {
			continue
		}
		matched := f.match(r)
		switch f.action {
		case rbacconfig.RBAC_LOG:
			if matched != "" && d.Audit == "" {
				d.Audit = matched
			}
		case rbacconfig.RBAC_DENY:
			if matched != "" {
				d.Allowed, d.Filter, d.Policy = false, f.name, matched
				return d
			}
		case rbacconfig.RBAC_ALLOW:
			if matched == "" {
				d.Allowed, d.Filter, d.Policy = false, f.name, f.deny
				return d
			}
			d.Filter, d.Policy = f.name, matched
		}
	}
	return d
}

// Empty reports whether the engine has no enforcing filter.
func (e *Engine) Empty() bool {
	if e == nil {
		return false
	}
	for _, f := range e.filters {
		if f.enforce {
			return false
		}
	}
	return true
}

// match returns the name of the first policy (in name order) that matches.
func (f *compiledFilter) match(r *Request) string {
	for i := range f.policies {
		p := &f.policies[i]
		if anyRule(p.permissions, r) && anyRule(p.principals, r) {
			return p.name
		}
	}
	return ""
}

// rule is a compiled permission or principal. Envoy's two trees have the
// same shape (any, and, or, not, and leaves; some leaves in both), so they
// compile to the same nodes and one walk matches both.
type rule interface{ match(*Request) bool }

// anyRule reports whether some rule of rs matches (an OR; false when empty).
func anyRule(rs []rule, r *Request) bool {
	for _, x := range rs {
		if x.match(r) {
			return true
		}
	}
	return false
}

type (
	anyMatch    struct{}
	andRule     []rule
	orRule      []rule
	notRule     struct{ x rule }
	headerMatch struct{ h headerMatcher }
	pathMatch   struct{ m stringMatcher }
	destPort    uint32
	destRange   struct{ start, end int64 }
	destIP      netip.Prefix
	sourceIP    netip.Prefix
	authnMatch  struct{ m *stringMatcher }
)

func (anyMatch) match(*Request) bool { return true }

func (a andRule) match(r *Request) bool {
	for _, x := range a {
		if !x.match(r) {
			return false
		}
	}
	return true
}

func (o orRule) match(r *Request) bool { return anyRule(o, r) }

func (n notRule) match(r *Request) bool { return !n.x.match(r) }

func (h headerMatch) match(r *Request) bool { return h.h.match(r) }

func (p pathMatch) match(r *Request) bool { return p.m.match(r.Path) }

func (d destPort) match(r *Request) bool { return r.DestinationPort == uint32(d) }

func (d destRange) match(r *Request) bool {
	p := int64(r.DestinationPort)
	return p >= d.start && p < d.end
}

func (d destIP) match(r *Request) bool {
	return r.DestinationIP.IsValid() && netip.Prefix(d).Contains(r.DestinationIP.Unmap())
}

func (s sourceIP) match(r *Request) bool {
	return r.Source.IsValid() && netip.Prefix(s).Contains(r.Source.Unmap())
}

func (a authnMatch) match(r *Request) bool {
	if r.Principal == "" {
		return false
	}
	return a.m == nil || a.m.match(r.Principal)
}

// compileAll compiles a list of rules; an error names field[index].
func compileAll[T any](field string, items []T, compile func(T) (rule, error)) ([]rule, error) {
	out := make([]rule, 0, len(items))
	for i, q := range items {
		m, err := compile(q)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func compilePermission(p *rbacconfig.Permission) (rule, error) {
	switch x := p.GetRule().(type) {
	case *rbacconfig.Permission_Any:
		return compileAny(x.Any)
	case *rbacconfig.Permission_AndRules:
		rs, err := compileAll("and_rules", x.AndRules.GetRules(), compilePermission)
		return andRule(rs), err
	case *rbacconfig.Permission_OrRules:
		rs, err := compileAll("or_rules", x.OrRules.GetRules(), compilePermission)
		return orRule(rs), err
	case *rbacconfig.Permission_NotRule:
		return compileNot("not_rule", x.NotRule, compilePermission)
	case *rbacconfig.Permission_Header:
		return compileHeaderRule(x.Header)
	case *rbacconfig.Permission_UrlPath:
		return compileURLPath(x.UrlPath)
	case *rbacconfig.Permission_DestinationPort:
		return destPort(x.DestinationPort), nil
	case *rbacconfig.Permission_DestinationPortRange:
		return destRange{int64(x.DestinationPortRange.GetStart()), int64(x.DestinationPortRange.GetEnd())}, nil
	case *rbacconfig.Permission_DestinationIp:
		pf, err := cidr(x.DestinationIp.GetAddressPrefix(), x.DestinationIp.GetPrefixLen().GetValue())
		if err != nil {
			return nil, fmt.Errorf("destination_ip: %w", err)
		}
		return destIP(pf), nil
	}
	return nil, fmt.Errorf("%T: not supported", p.GetRule())
}

func compilePrincipal(p *rbacconfig.Principal) (rule, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfig.Principal_Any:
		return compileAny(id.Any)
	case *rbacconfig.Principal_AndIds:
		rs, err := compileAll("and_ids", id.AndIds.GetIds(), compilePrincipal)
		return andRule(rs), err
	case *rbacconfig.Principal_OrIds:
		rs, err := compileAll("or_ids", id.OrIds.GetIds(), compilePrincipal)
		return orRule(rs), err
	case *rbacconfig.Principal_NotId:
		return compileNot("not_id", id.NotId, compilePrincipal)
	case *rbacconfig.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return authnMatch{}, nil
		}
		m, err := compileString(id.Authenticated.GetPrincipalName())
		if err != nil {
			return nil, fmt.Errorf("authenticated.principal_name: %w", err)
		}
		return authnMatch{&m}, nil
	case *rbacconfig.Principal_DirectRemoteIp:
		return compileSource("direct_remote_ip", id.DirectRemoteIp.GetAddressPrefix(), id.DirectRemoteIp.GetPrefixLen().GetValue())
	case *rbacconfig.Principal_RemoteIp:
		// No trusted proxy in front of a sidecar: the remote address is
		// the direct one (x-forwarded-for is never trusted).
		return compileSource("remote_ip", id.RemoteIp.GetAddressPrefix(), id.RemoteIp.GetPrefixLen().GetValue())
	case *rbacconfig.Principal_SourceIp: //nolint:staticcheck // deprecated in Envoy, still valid config
		return compileSource("source_ip", id.SourceIp.GetAddressPrefix(), id.SourceIp.GetPrefixLen().GetValue())
	case *rbacconfig.Principal_Header:
		return compileHeaderRule(id.Header)
	case *rbacconfig.Principal_UrlPath:
		return compileURLPath(id.UrlPath)
	}
	return nil, fmt.Errorf("%T: not supported", p.GetIdentifier())
}

// The leaves and nodes permissions and principals share.

func compileAny(v bool) (rule, error) {
	if !v {
		return nil, errors.New("any: must be true")
	}
	return anyMatch{}, nil
}

func compileNot[T any](field string, x T, compile func(T) (rule, error)) (rule, error) {
	m, err := compile(x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return notRule{m}, nil
}

func compileHeaderRule(h *routev3.HeaderMatcher) (rule, error) {
	m, err := compileHeader(h)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return headerMatch{m}, nil
}

func compileURLPath(p *matcher.PathMatcher) (rule, error) {
	sm := p.GetPath()
	if sm == nil {
		return nil, errors.New("url_path: only path is supported")
	}
	m, err := compileString(sm)
	if err != nil {
		return nil, fmt.Errorf("url_path: %w", err)
	}
	return pathMatch{m}, nil
}

func compileSource(field, addr string, bits uint32) (rule, error) {
	pf, err := cidr(addr, bits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return sourceIP(pf), nil
}

func cidr(addr string, bits uint32) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address_prefix %q is not an IP address", addr)
	}
	ip = ip.Unmap()
	if int(bits) > ip.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix_len %d is too long for %s", bits, addr)
	}
	return ip.Prefix(int(bits))
}

// headerMatcher is a compiled route.v3.HeaderMatcher.
type headerMatcher struct {
	name           string
	key            string
	present        *bool
	str            *stringMatcher
	invert         bool
	missingAsEmpty bool
}

func (h headerMatcher) match(r *Request) bool {
	v, ok := r.header(h.name, h.key)
	if !ok && h.missingAsEmpty {
		v, ok = "", true
	}
	var m bool
	switch {
	case h.present != nil:
		m = ok == *h.present
	case !ok:
		m = false
	default:
		m = h.str.match(v)
	}
	if h.invert {
		// Envoy: an absent header never matches, even inverted, unless
		// it is a present_match.
		if !ok && h.present == nil {
			return false
		}
		return !m
	}
	return m
}

func compileHeader(h *routev3.HeaderMatcher) (headerMatcher, error) {
	out := headerMatcher{name: strings.ToLower(h.GetName()), key: textproto.CanonicalMIMEHeaderKey(h.GetName()), invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	var sm *matcher.StringMatcher
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm = spec.StringMatch
	case *routev3.HeaderMatcher_ExactMatch: //nolint:staticcheck // deprecated, still valid config
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: spec.ExactMatch}}
	case *routev3.HeaderMatcher_PrefixMatch: //nolint:staticcheck // deprecated, still valid config
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: spec.PrefixMatch}}
	case *routev3.HeaderMatcher_SuffixMatch: //nolint:staticcheck // deprecated, still valid config
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: spec.SuffixMatch}}
	case *routev3.HeaderMatcher_ContainsMatch: //nolint:staticcheck // deprecated, still valid config
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Contains{Contains: spec.ContainsMatch}}
	case *routev3.HeaderMatcher_SafeRegexMatch: //nolint:staticcheck // deprecated, still valid config
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: spec.SafeRegexMatch}}
	case *routev3.HeaderMatcher_PresentMatch:
		p := spec.PresentMatch
		out.present = &p
		return out, nil
	case nil:
		t := true
		out.present = &t
		return out, nil
	default:
		return out, fmt.Errorf("%T: not supported", spec)
	}
	m, err := compileString(sm)
	if err != nil {
		return out, err
	}
	out.str = &m
	return out, nil
}

// stringMatcher is a compiled matcher.v3.StringMatcher.
type stringMatcher struct {
	kind       byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

func (s stringMatcher) match(v string) bool {
	switch s.kind {
	case 'r':
		return s.re.MatchString(v)
	case 'e':
		if s.ignoreCase {
			return strings.EqualFold(v, s.value)
		}
		return v == s.value
	case 'p':
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[:len(s.value)], s.value)
		}
		return strings.HasPrefix(v, s.value)
	case 's':
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[len(v)-len(s.value):], s.value)
		}
		return strings.HasSuffix(v, s.value)
	case 'c':
		if s.ignoreCase {
			return strings.Contains(strings.ToLower(v), s.value)
		}
		return strings.Contains(v, s.value)
	}
	return false
}

func compileString(sm *matcher.StringMatcher) (stringMatcher, error) {
	out := stringMatcher{ignoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		out.kind, out.value = 'e', p.Exact
	case *matcher.StringMatcher_Prefix:
		out.kind, out.value = 'p', p.Prefix
	case *matcher.StringMatcher_Suffix:
		out.kind, out.value = 's', p.Suffix
	case *matcher.StringMatcher_Contains:
		out.kind, out.value = 'c', p.Contains
		if out.ignoreCase {
			out.value = strings.ToLower(out.value)
		}
	case *matcher.StringMatcher_SafeRegex:
		// Whole-value match, as Envoy's safe_regex.
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		out.kind, out.re = 'r', re
	default:
		return out, fmt.Errorf("%T: not supported", p)
	}
	return out, nil
}
