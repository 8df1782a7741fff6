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

	rbacconfig "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Filter is one RBAC HTTP filter of a filter chain: its HttpFilter name and
// its typed config.
type Filter struct {
	Name   string
	Config *rbacfilter.RBAC
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
	permissions []permission
	principals  []principal
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
	c := f.Config
	if c == nil {
		return cf, errors.New("config is missing")
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
		for i, perm := range p.GetPermissions() {
			m, err := compilePermission(perm)
			if err != nil {
				return cf, fmt.Errorf("policy %q: permissions[%d]: %w", n, i, err)
			}
			cp.permissions = append(cp.permissions, m)
		}
		for i, pr := range p.GetPrincipals() {
			m, err := compilePrincipal(pr)
			if err != nil {
				return cf, fmt.Errorf("policy %q: principals[%d]: %w", n, i, err)
			}
			cp.principals = append(cp.principals, m)
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
		if anyPermission(p.permissions, r) && anyPrincipal(p.principals, r) {
			return p.name
		}
	}
	return ""
}

func anyPermission(ps []permission, r *Request) bool {
	for _, p := range ps {
		if p.match(r) {
			return true
		}
	}
	return false
}

func anyPrincipal(ps []principal, r *Request) bool {
	for _, p := range ps {
		if p.match(r) {
			return true
		}
	}
	return false
}

// permission and principal are compiled matchers.
type (
	permission interface{ match(*Request) bool }
	principal  interface{ match(*Request) bool }
)

type (
	anyMatch     struct{}
	andPerm      []permission
	orPerm       []permission
	notPerm      struct{ p permission }
	andPrin      []principal
	orPrin       []principal
	notPrin      struct{ p principal }
	headerMatch  struct{ h headerMatcher }
	pathMatch    struct{ m stringMatcher }
	destPort     uint32
	destRange    struct{ start, end int64 }
	destIP       netip.Prefix
	sourceIP     netip.Prefix
	authnMatch   struct{ m *stringMatcher }
	headerMatchP struct{ h headerMatcher }
)

func (anyMatch) match(*Request) bool { return true }

func (a andPerm) match(r *Request) bool {
	for _, p := range a {
		if !p.match(r) {
			return false
		}
	}
	return true
}

func (o orPerm) match(r *Request) bool { return anyPermission(o, r) }

func (n notPerm) match(r *Request) bool { return !n.p.match(r) }

func (a andPrin) match(r *Request) bool {
	for _, p := range a {
		if !p.match(r) {
			return false
		}
	}
	return true
}

func (o orPrin) match(r *Request) bool { return anyPrincipal(o, r) }

func (n notPrin) match(r *Request) bool { return !n.p.match(r) }

func (h headerMatch) match(r *Request) bool  { return h.h.match(r) }
func (h headerMatchP) match(r *Request) bool { return h.h.match(r) }

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

func compilePermission(p *rbacconfig.Permission) (permission, error) {
	switch rule := p.GetRule().(type) {
	case *rbacconfig.Permission_Any:
		if !rule.Any {
			return nil, errors.New("any: must be true")
		}
		return anyMatch{}, nil
	case *rbacconfig.Permission_AndRules:
		out := andPerm{}
		for i, q := range rule.AndRules.GetRules() {
			m, err := compilePermission(q)
			if err != nil {
				return nil, fmt.Errorf("and_rules[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacconfig.Permission_OrRules:
		out := orPerm{}
		for i, q := range rule.OrRules.GetRules() {
			m, err := compilePermission(q)
			if err != nil {
				return nil, fmt.Errorf("or_rules[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacconfig.Permission_NotRule:
		m, err := compilePermission(rule.NotRule)
		if err != nil {
			return nil, fmt.Errorf("not_rule: %w", err)
		}
		return notPerm{m}, nil
	case *rbacconfig.Permission_Header:
		h, err := compileHeader(rule.Header)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		return headerMatch{h}, nil
	case *rbacconfig.Permission_UrlPath:
		sm := rule.UrlPath.GetPath()
		if sm == nil {
			return nil, errors.New("url_path: only path is supported")
		}
		m, err := compileString(sm)
		if err != nil {
			return nil, fmt.Errorf("url_path: %w", err)
		}
		return pathMatch{m}, nil
	case *rbacconfig.Permission_DestinationPort:
		return destPort(rule.DestinationPort), nil
	case *rbacconfig.Permission_DestinationPortRange:
		return destRange{int64(rule.DestinationPortRange.GetStart()), int64(rule.DestinationPortRange.GetEnd())}, nil
	case *rbacconfig.Permission_DestinationIp:
		pf, err := cidr(rule.DestinationIp.GetAddressPrefix(), rule.DestinationIp.GetPrefixLen().GetValue())
		if err != nil {
			return nil, fmt.Errorf("destination_ip: %w", err)
		}
		return destIP(pf), nil
	}
	return nil, fmt.Errorf("%T: not supported", p.GetRule())
}

func compilePrincipal(p *rbacconfig.Principal) (principal, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacconfig.Principal_Any:
		if !id.Any {
			return nil, errors.New("any: must be true")
		}
		return anyMatch{}, nil
	case *rbacconfig.Principal_AndIds:
		out := andPrin{}
		for i, q := range id.AndIds.GetIds() {
			m, err := compilePrincipal(q)
			if err != nil {
				return nil, fmt.Errorf("and_ids[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacconfig.Principal_OrIds:
		out := orPrin{}
		for i, q := range id.OrIds.GetIds() {
			m, err := compilePrincipal(q)
			if err != nil {
				return nil, fmt.Errorf("or_ids[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case *rbacconfig.Principal_NotId:
		m, err := compilePrincipal(id.NotId)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return notPrin{m}, nil
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
		h, err := compileHeader(id.Header)
		if err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		return headerMatchP{h}, nil
	case *rbacconfig.Principal_UrlPath:
		sm := id.UrlPath.GetPath()
		if sm == nil {
			return nil, errors.New("url_path: only path is supported")
		}
		m, err := compileString(sm)
		if err != nil {
			return nil, fmt.Errorf("url_path: %w", err)
		}
		return pathMatch{m}, nil
	}
	return nil, fmt.Errorf("%T: not supported", p.GetIdentifier())
}

func compileSource(field, addr string, bits uint32) (principal, error) {
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
