package authz

import (
	"net/http"
	"net/netip"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfig "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	v3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	gateway = "spiffe://cluster.local/ns/shop/sa/api-gateway"
	rogue   = "spiffe://cluster.local/ns/shop/sa/rogue"
)

func exactM(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

func prefixM(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s}}
}

func principalName(m *matcher.StringMatcher) *rbacconfig.Principal {
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_Authenticated_{Authenticated: &rbacconfig.Principal_Authenticated{PrincipalName: m}}}
}

func header(name string, m *matcher.StringMatcher) *rbacconfig.Permission {
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_Header{Header: &route.HeaderMatcher{Name: name, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: m}}}}
}

func path(m *matcher.StringMatcher) *rbacconfig.Permission {
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: m}}}}
}

func and(ps ...*rbacconfig.Permission) *rbacconfig.Permission {
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_AndRules{AndRules: &rbacconfig.Permission_Set{Rules: ps}}}
}

var (
	anyPerm = &rbacconfig.Permission{Rule: &rbacconfig.Permission_Any{Any: true}}
	anyID   = &rbacconfig.Principal{Identifier: &rbacconfig.Principal_Any{Any: true}}
)

func filter(name string, action rbacconfig.RBAC_Action, policies map[string]*rbacconfig.Policy) Filter {
	return Filter{Name: name, Config: &rbacfilter.RBAC{Rules: &rbacconfig.RBAC{Action: action, Policies: policies}}}
}

// shop is the order workload's chain: DENY /admin for everyone, the
// NetworkPolicy (api-gateway on 8080, or 10.1.0.0/16 minus 10.1.2.0/24),
// ALLOW GET /order* from api-gateway, AUDIT of x-debug requests.
func shop(t *testing.T) *Engine {
	t.Helper()
	e, err := Compile([]Filter{
		filter("weft.authz.audit", rbacconfig.RBAC_LOG, map[string]*rbacconfig.Policy{
			"shop/audit/rules[0]": {Permissions: []*rbacconfig.Permission{{Rule: &rbacconfig.Permission_Header{Header: &route.HeaderMatcher{Name: "x-debug", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}, Principals: []*rbacconfig.Principal{anyID}},
		}),
		filter("weft.authz.deny", rbacconfig.RBAC_DENY, map[string]*rbacconfig.Policy{
			"shop/deny-admin/rules[0]": {Permissions: []*rbacconfig.Permission{path(exactM("/admin")), path(prefixM("/admin/"))}, Principals: []*rbacconfig.Principal{anyID}},
		}),
		filter("weft.netpol.ingress", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{
			"shop/order-ingress/ingress[0]": {
				Permissions: []*rbacconfig.Permission{{Rule: &rbacconfig.Permission_DestinationPort{DestinationPort: 8080}}},
				Principals: []*rbacconfig.Principal{
					principalName(exactM(gateway)),
					{Identifier: &rbacconfig.Principal_AndIds{AndIds: &rbacconfig.Principal_Set{Ids: []*rbacconfig.Principal{
						{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: "10.1.0.0", PrefixLen: wrapperspb.UInt32(16)}}},
						{Identifier: &rbacconfig.Principal_NotId{NotId: &rbacconfig.Principal{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: "10.1.2.0", PrefixLen: wrapperspb.UInt32(24)}}}}},
					}}}},
				},
			},
		}),
		filter("weft.authz.allow", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{
			"shop/order-api/rules[0]": {
				Permissions: []*rbacconfig.Permission{and(header(":method", exactM("GET")), path(prefixM("/order")))},
				Principals:  []*rbacconfig.Principal{principalName(exactM(gateway))},
			},
			"shop/order-api/rules[1]": {
				Permissions: []*rbacconfig.Permission{and(
					header(":authority", &matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Exact{Exact: "order.shop:8080"}}),
					path(exactM("/public")),
					&rbacconfig.Permission{Rule: &rbacconfig.Permission_NotRule{NotRule: header("x-block", exactM("1"))}},
				)},
				Principals: []*rbacconfig.Principal{{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: "10.1.0.0", PrefixLen: wrapperspb.UInt32(16)}}}},
			},
		}),
	})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func TestEvaluate(t *testing.T) {
	e := shop(t)
	base := func(mod func(*Request)) *Request {
		r := &Request{Principal: gateway, Source: netip.MustParseAddr("10.9.0.1"), DestinationPort: 8080, Method: "GET", Authority: "order.shop:8080", Path: "/order", Headers: http.Header{}}
		if mod != nil {
			mod(r)
		}
		return r
	}
	tests := []struct {
		name        string
		req         *Request
		allowed     bool
		filter      string
		policy      string
		audit       string
		description string
	}{
		{name: "gateway GET /order", req: base(nil), allowed: true, filter: "weft.authz.allow", policy: "shop/order-api/rules[0]"},
		{name: "gateway GET /orders/1 (prefix)", req: base(func(r *Request) { r.Path = "/orders/1" }), allowed: true, filter: "weft.authz.allow", policy: "shop/order-api/rules[0]"},
		{name: "POST not allowed", req: base(func(r *Request) { r.Method = "POST" }), filter: "weft.authz.allow", policy: "weft.authz.allow:default-deny"},
		{name: "case-sensitive path", req: base(func(r *Request) { r.Path = "/ORDER" }), filter: "weft.authz.allow", policy: "weft.authz.allow:default-deny"},
		{name: "admin denied first", req: base(func(r *Request) { r.Path = "/admin" }), filter: "weft.authz.deny", policy: "shop/deny-admin/rules[0]"},
		{name: "admin subpath denied", req: base(func(r *Request) { r.Path = "/admin/x" }), filter: "weft.authz.deny", policy: "shop/deny-admin/rules[0]"},
		{name: "other identity", req: base(func(r *Request) { r.Principal = rogue }), filter: "weft.netpol.ingress", policy: "weft.netpol.ingress:default-deny"},
		{name: "no identity (plaintext)", req: base(func(r *Request) { r.Principal = "" }), filter: "weft.netpol.ingress", policy: "weft.netpol.ingress:default-deny"},
		{name: "other port", req: base(func(r *Request) { r.DestinationPort = 9090 }), filter: "weft.netpol.ingress", policy: "weft.netpol.ingress:default-deny"},
		{name: "ipBlock source, public path", req: base(func(r *Request) { r.Principal, r.Source, r.Path = "", netip.MustParseAddr("10.1.3.4"), "/public" }), allowed: true, filter: "weft.authz.allow", policy: "shop/order-api/rules[1]"},
		{name: "ipBlock source, authority ignores case", req: base(func(r *Request) {
			r.Principal, r.Source, r.Path, r.Authority = "", netip.MustParseAddr("10.1.3.4"), "/public", "ORDER.shop:8080"
		}), allowed: true, filter: "weft.authz.allow", policy: "shop/order-api/rules[1]"},
		{name: "ipBlock except", req: base(func(r *Request) { r.Principal, r.Source, r.Path = "", netip.MustParseAddr("10.1.2.4"), "/public" }), filter: "weft.netpol.ingress", policy: "weft.netpol.ingress:default-deny"},
		{name: "not_rule header", req: base(func(r *Request) {
			r.Principal, r.Source, r.Path = "", netip.MustParseAddr("10.1.3.4"), "/public"
			r.Headers.Set("X-Block", "1")
		}), filter: "weft.authz.allow", policy: "weft.authz.allow:default-deny"},
		{name: "audit logs and allows", req: base(func(r *Request) { r.Headers.Set("X-Debug", "") }), allowed: true, filter: "weft.authz.allow", policy: "shop/order-api/rules[0]", audit: "shop/audit/rules[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Evaluate(tc.req)
			want := Decision{Allowed: tc.allowed, Filter: tc.filter, Policy: tc.policy, Audit: tc.audit}
			if d != want {
				t.Errorf("Evaluate = %+v, want %+v", d, want)
			}
		})
	}
}

func TestEvaluateEdges(t *testing.T) {
	var nilEngine *Engine
	if d := nilEngine.Evaluate(&Request{}); d.Allowed {
		t.Errorf("nil engine allowed a request: fail closed expected")
	}
	e, err := Compile(nil)
	if err != nil || !e.Evaluate(&Request{}).Allowed || !e.Empty() {
		t.Errorf("empty engine: %v, want allow", err)
	}
	e, err = Compile([]Filter{filter("f", rbacconfig.RBAC_ALLOW, nil)})
	if err != nil || e.Evaluate(&Request{}).Allowed {
		t.Errorf("ALLOW with no policies must deny everything (err %v)", err)
	}
	e, err = Compile([]Filter{{Name: "off", Config: &rbacfilter.RBAC{}}})
	if err != nil || !e.Evaluate(&Request{}).Allowed {
		t.Errorf("a filter without rules does not enforce (err %v)", err)
	}
	e, err = Compile([]Filter{filter("r", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{
		"range": {Permissions: []*rbacconfig.Permission{{Rule: &rbacconfig.Permission_DestinationPortRange{DestinationPortRange: &v3.Int32Range{Start: 80, End: 82}}}}, Principals: []*rbacconfig.Principal{anyID}},
		"regex": {Permissions: []*rbacconfig.Permission{path(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/v[0-9]+"}}})}, Principals: []*rbacconfig.Principal{anyID}},
	})})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		port uint32
		path string
		want bool
	}{{80, "/", true}, {81, "/", true}, {82, "/", false}, {82, "/v2", true}, {82, "/v2/x", false}} {
		if got := e.Evaluate(&Request{DestinationPort: c.port, Path: c.path}).Allowed; got != c.want {
			t.Errorf("port %d path %s: allowed %v, want %v", c.port, c.path, got, c.want)
		}
	}
}

func TestCompileRejectsUnsupported(t *testing.T) {
	for name, f := range map[string]Filter{
		"nil config":    {Name: "x"},
		"shadow rules":  {Name: "x", Config: &rbacfilter.RBAC{ShadowRules: &rbacconfig.RBAC{}}},
		"metadata perm": filter("x", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{"p": {Permissions: []*rbacconfig.Permission{{Rule: &rbacconfig.Permission_Metadata{Metadata: &matcher.MetadataMatcher{}}}}, Principals: []*rbacconfig.Principal{anyID}}}),
		"bad regex":     filter("x", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{"p": {Permissions: []*rbacconfig.Permission{path(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "("}}})}, Principals: []*rbacconfig.Principal{anyID}}}),
		"bad cidr":      filter("x", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{"p": {Permissions: []*rbacconfig.Permission{anyPerm}, Principals: []*rbacconfig.Principal{{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: "nope"}}}}}}),
		"no principal":  filter("x", rbacconfig.RBAC_ALLOW, map[string]*rbacconfig.Policy{"p": {Permissions: []*rbacconfig.Permission{anyPerm}}}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile([]Filter{f}); err == nil {
				t.Errorf("Compile accepted %s", name)
			}
		})
	}
}

func TestEvaluateNoAlloc(t *testing.T) {
	e := shop(t)
	r := &Request{Principal: gateway, DestinationPort: 8080, Method: "GET", Authority: "order.shop:8080", Path: "/order", Headers: http.Header{}}
	if n := testing.AllocsPerRun(100, func() { e.Evaluate(r) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
}

// FuzzEvaluate: for any request, the shop engine decides consistently
// with its policies' meaning: a normalized /admin path is always denied,
// and nothing without the gateway identity or an allowed source address
// is ever allowed. Seeds: testdata/fuzz/FuzzEvaluate.
func FuzzEvaluate(f *testing.F) {
	f.Add(gateway, "10.9.0.1", uint16(8080), "GET", "/order", "order.shop:8080")
	f.Add(rogue, "10.1.3.4", uint16(8080), "GET", "/public", "order.shop:8080")
	f.Add("", "10.1.2.9", uint16(8080), "GET", "/admin/../admin", "x")
	f.Fuzz(func(t *testing.T, principal, src string, port uint16, method, rawPath, authority string) {
		e := shop(t)
		p, err := NormalizePath(rawPath)
		if err != nil {
			return
		}
		ip, _ := netip.ParseAddr(src)
		d := e.Evaluate(&Request{Principal: principal, Source: ip, DestinationPort: uint32(port), Method: method, Authority: authority, Path: p, Headers: http.Header{}})
		if d.Allowed && (p == "/admin" || len(p) > 7 && p[:7] == "/admin/") {
			t.Fatalf("allowed %q (from %q)", p, rawPath)
		}
		fromRange := ip.IsValid() && netip.MustParsePrefix("10.1.0.0/16").Contains(ip.Unmap()) && !netip.MustParsePrefix("10.1.2.0/24").Contains(ip.Unmap())
		if d.Allowed && principal != gateway && !fromRange {
			t.Fatalf("allowed principal %q from %s", principal, src)
		}
		if d.Allowed && port != 8080 {
			t.Fatalf("allowed port %d", port)
		}
		if !d.Allowed && d.Policy == "" {
			t.Fatalf("denial without a deciding policy")
		}
	})
}
