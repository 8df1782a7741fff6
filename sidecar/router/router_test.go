package router_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

const (
	nodeIP = "127.0.0.10"
	peerIP = "127.0.0.11"
)

var (
	payment80   = mesh.OutboundClusterName(80, mesh.ServiceHost("payment", "shop", mesh.DefaultClusterDomain))
	payment8080 = mesh.OutboundClusterName(8080, mesh.ServiceHost("payment", "shop", mesh.DefaultClusterDomain))
	billing9000 = mesh.OutboundClusterName(9000, mesh.ServiceHost("billing", "finance", mesh.DefaultClusterDomain))
)

func resources() xdstest.Resources {
	ep := func(port uint32) xdstest.Endpoint {
		return xdstest.Endpoint{IP: peerIP, Port: port, TunnelPort: mesh.PortInbound, Workload: "payment-1.shop", Identity: mesh.SPIFFEID("cluster.local", "shop", "payment")}
	}
	return xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(nodeIP), xdstest.InboundListener(nodeIP, 7000, 7001)},
		Routes: []*route.RouteConfiguration{xdstest.OutboundRoute(
			xdstest.ServiceVirtualHost("payment", "shop", 80, true),
			xdstest.ServiceVirtualHost("payment", "shop", 8080, true),
			xdstest.ServiceVirtualHost("billing", "finance", 9000, false),
		)},
		Clusters: []*cluster.Cluster{
			xdstest.OutboundCluster("payment", "shop", 80),
			xdstest.OutboundCluster("payment", "shop", 8080),
			xdstest.OutboundCluster("billing", "finance", 9000),
			xdstest.InboundCluster(nodeIP, 7000),
			xdstest.InboundCluster(nodeIP, 7001),
		},
		Endpoints: []*endpoint.ClusterLoadAssignment{
			xdstest.Assignment(payment80, ep(8080)),
			xdstest.Assignment(payment8080, ep(8080)),
			xdstest.Assignment(billing9000, xdstest.Endpoint{IP: "127.0.0.12", Port: 9000}),
		},
	}
}

func compile(t *testing.T, r xdstest.Resources, prev *router.Table) *router.Table {
	t.Helper()
	s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	tbl, err := router.Compile(s, prev)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func TestOutboundHostRouting(t *testing.T) {
	tbl := compile(t, resources(), nil)
	if tbl.Outbound == nil || tbl.Outbound.Address != nodeIP+":15001" {
		t.Fatalf("outbound listener = %+v", tbl.Outbound)
	}
	routes := tbl.Outbound.Chain(0).Routes
	tests := []struct {
		host, cluster string
	}{
		{"payment", payment80},
		{"payment:80", payment80},
		{"payment.shop", payment80},
		{"payment.shop.svc", payment80},
		{"payment.shop.svc.cluster.local", payment80},
		{"payment.shop.svc.cluster.local:80", payment80},
		{"payment:8080", payment8080},
		{"payment.shop:8080", payment8080},
		{"Payment.Shop.SVC:8080", payment8080},
		{"payment.shop.svc.cluster.local:8080", payment8080},
		{"billing.finance:9000", billing9000},
		{"billing.finance.svc.cluster.local:9000", billing9000},
		// Not in the domains list.
		{"billing:9000", ""},
		{"payment.shop:9999", ""},
		{"payment.shop.svc.cluster.local.:8080", ""},
		{"example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			vh := routes.VirtualHost(tc.host)
			if tc.cluster == "" {
				if vh != nil {
					t.Fatalf("VirtualHost(%q) = %q, want none", tc.host, vh.Name)
				}
				return
			}
			if vh == nil {
				t.Fatalf("VirtualHost(%q) = nil", tc.host)
			}
			rt := vh.Route(httptest.NewRequest("GET", "/any/path?q=1", nil))
			if rt == nil || rt.ClusterName != tc.cluster || rt.Cluster == nil || rt.Cluster.Name != tc.cluster {
				t.Fatalf("route for %q = %+v, want cluster %q", tc.host, rt, tc.cluster)
			}
		})
	}
}

func TestEndpointsAndInboundChains(t *testing.T) {
	tbl := compile(t, resources(), nil)
	eps := tbl.Clusters[payment8080].Picker.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("endpoints = %v", eps)
	}
	e := eps[0]
	if e.Addr != peerIP+":8080" || e.TunnelAddr != peerIP+":15006" || e.TargetPort != "8080" ||
		e.Workload != "payment-1.shop" || e.Identity != "spiffe://cluster.local/ns/shop/sa/payment" || e.ConnectTimeout != mesh.DefaultConnectTimeout {
		t.Errorf("endpoint = %+v", e)
	}
	if e := tbl.Clusters[billing9000].Picker.Endpoints()[0]; e.TunnelAddr != "" || e.Addr != "127.0.0.12:9000" {
		t.Errorf("direct endpoint = %+v", e)
	}

	in := tbl.Inbound
	if in == nil || in.Address != nodeIP+":15006" {
		t.Fatalf("inbound listener = %+v", in)
	}
	for _, port := range []uint32{7000, 7001} {
		ch := in.Chain(port)
		if ch == nil || ch.Port != port {
			t.Fatalf("Chain(%d) = %+v", port, ch)
		}
		rt := ch.Routes.VirtualHost("whatever.example:1").Route(httptest.NewRequest("POST", "/", nil))
		if rt == nil || rt.Cluster == nil || rt.Cluster.Name != mesh.InboundClusterName(port) {
			t.Fatalf("inbound route for %d = %+v", port, rt)
		}
		app := rt.Cluster.Picker.Pick()
		if app == nil || app.Addr != nodeIP+":"+ch.Routes.Name[len("inbound|"):] || app.TunnelAddr != "" {
			t.Errorf("inbound app endpoint = %+v", app)
		}
	}
	if ch := in.Chain(7002); ch != nil {
		t.Errorf("Chain(7002) = %+v, want nil", ch)
	}
}

func TestPickersKeptWhenUnchanged(t *testing.T) {
	r := resources()
	t1 := compile(t, r, nil)
	// A new EDS version where only payment:8080 changed.
	r2 := resources()
	r2.Endpoints[1] = xdstest.Assignment(payment8080,
		xdstest.Endpoint{IP: peerIP, Port: 8080, TunnelPort: mesh.PortInbound},
		xdstest.Endpoint{IP: "127.0.0.13", Port: 8080, TunnelPort: mesh.PortInbound})
	t2 := compile(t, r2, t1)
	if t2.Clusters[payment80].Picker != t1.Clusters[payment80].Picker {
		t.Error("unchanged cluster got a new picker")
	}
	if t2.Clusters[payment8080].Picker == t1.Clusters[payment8080].Picker {
		t.Error("changed cluster kept its old picker")
	}
	if n := len(t2.Clusters[payment8080].Picker.Endpoints()); n != 2 {
		t.Errorf("changed cluster has %d endpoints, want 2", n)
	}
	if n := len(t1.Clusters[payment8080].Picker.Endpoints()); n != 1 {
		t.Errorf("old table changed: %d endpoints", n)
	}
}

func TestPriorityAndHealth(t *testing.T) {
	r := resources()
	cla := xdstest.Assignment(payment8080,
		xdstest.Endpoint{IP: "127.0.0.21", Port: 8080, Health: core.HealthStatus_UNHEALTHY},
		xdstest.Endpoint{IP: "127.0.0.22", Port: 8080, Health: core.HealthStatus_DRAINING})
	backup := xdstest.Assignment(payment8080, xdstest.Endpoint{IP: "127.0.0.23", Port: 8080})
	backup.Endpoints[0].Priority = 1
	cla.Endpoints = append(cla.Endpoints, backup.Endpoints[0])
	r.Endpoints[1] = cla
	tbl := compile(t, r, nil)
	eps := tbl.Clusters[payment8080].Picker.Endpoints()
	if len(eps) != 1 || eps[0].Addr != "127.0.0.23:8080" {
		t.Errorf("endpoints = %+v, want the priority 1 endpoint only", eps)
	}

	r.Endpoints[1] = xdstest.Assignment(payment8080, xdstest.Endpoint{IP: "127.0.0.21", Port: 8080, Health: core.HealthStatus_UNHEALTHY})
	if p := compile(t, r, nil).Clusters[payment8080].Picker.Pick(); p != nil {
		t.Errorf("Pick() = %+v, want nil with no healthy endpoint", p)
	}
}

func TestMatch(t *testing.T) {
	req := func(path string, hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	tests := []struct {
		name  string
		match router.Match
		req   *http.Request
		want  bool
	}{
		{"prefix", router.Match{Prefix: "/api"}, req("/api/v1"), true},
		{"prefix miss", router.Match{Prefix: "/api"}, req("/web"), false},
		{"prefix case", router.Match{Prefix: "/API"}, req("/api/v1"), false},
		{"prefix ignore case", router.Match{Prefix: "/API", CaseInsensitive: true}, req("/api/v1"), true},
		{"root", router.Match{Prefix: "/"}, req("/"), true},
		{"path", router.Match{Path: "/x", Kind: router.PathExact}, req("/x?y=1"), true},
		{"path miss", router.Match{Path: "/x", Kind: router.PathExact}, req("/x/"), false},
		{"header present", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-Canary", Kind: router.HeaderPresent}}}, req("/", "x-canary", ""), true},
		{"header absent", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-Canary", Kind: router.HeaderPresent}}}, req("/"), false},
		{"header exact", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderExact, Value: "2"}}}, req("/", "x-v", "2"), true},
		{"header exact ignore case", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderExact, Value: "Beta", IgnoreCase: true}}}, req("/", "x-v", "bEtA"), true},
		{"header inverted", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderExact, Value: "2", Invert: true}}}, req("/", "x-v", "2"), false},
		{"header prefix", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderPrefix, Value: "ab"}}}, req("/", "x-v", "abc"), true},
		{"header suffix", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderSuffix, Value: "bc"}}}, req("/", "x-v", "abc"), true},
		{"header contains", router.Match{Prefix: "/", Headers: []router.HeaderMatch{{Name: "X-V", Kind: router.HeaderContains, Value: "b"}}}, req("/", "x-v", "abc"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.match.Matches(tc.req); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompiledHeaderMatchers(t *testing.T) {
	r := resources()
	vh := r.Routes[0].VirtualHosts[1]
	canary := xdstest.PrefixRoute("/", payment80)
	canary.Match.Headers = []*route.HeaderMatcher{{
		Name: "x-canary",
		HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{
			MatchPattern: &matcher.StringMatcher_Exact{Exact: "yes"},
		}},
	}}
	vh.Routes = append([]*route.Route{canary}, vh.Routes...)
	tbl := compile(t, r, nil)
	v := tbl.Outbound.Chain(0).Routes.VirtualHost("payment:8080")
	req := httptest.NewRequest("GET", "/", nil)
	if got := v.Route(req).ClusterName; got != payment8080 {
		t.Errorf("without header: %s", got)
	}
	req.Header.Set("X-Canary", "yes")
	if got := v.Route(req).ClusterName; got != payment80 {
		t.Errorf("with header: %s", got)
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(r *xdstest.Resources)
		wantErr string
	}{
		{
			name: "bad regex path",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Match.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "(["}}
			},
			wantErr: "safe_regex \"([\"",
		},
		{
			name: "query parameter match without a matcher",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Match.QueryParameters = []*route.QueryParameterMatcher{{Name: "q"}}
			},
			wantErr: "query parameter \"q\": <nil> is not supported",
		},
		{
			name: "weighted clusters",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{
					Clusters: []*route.WeightedCluster_ClusterWeight{{Name: payment80, Weight: wrapperspb.UInt32(0)}},
				}}
			},
			wantErr: "no cluster has a weight",
		},
		{
			name: "prefix rewrite",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().PrefixRewrite = "/v2"
			},
			wantErr: "path rewrites are not supported",
		},
		{
			name: "inner wildcard domain",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Domains = append(r.Routes[0].VirtualHosts[0].Domains, "a*.shop")
			},
			wantErr: `domain "a*.shop": wildcards other than "*" and "*.<suffix>" are not supported`,
		},
		{
			name: "duplicate domain",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[1].Domains = append(r.Routes[0].VirtualHosts[1].Domains, "PAYMENT")
			},
			wantErr: `domain "payment" is already used by`,
		},
		{
			name: "direct response",
			mutate: func(r *xdstest.Resources) {
				r.Routes[0].VirtualHosts[0].Routes[0].Action = &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 200}}
			},
			wantErr: "action: only route is supported",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := resources()
			tc.mutate(&r)
			s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
			if err != nil {
				t.Fatalf("NewSnapshot: %v", err)
			}
			_, err = router.Compile(s, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Compile error = %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), `route "outbound"`) {
				t.Errorf("error %q does not name the route configuration", err)
			}
		})
	}
}

func TestMissingClusterAnswersLater(t *testing.T) {
	// CDS dropped a cluster that the current RDS still names (make before
	// break): the table compiles and that route has no cluster.
	r := resources()
	s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	s2 := *s
	s2.Clusters = map[string]*xdsclient.Cluster{}
	for k, v := range s.Clusters {
		if k != billing9000 {
			s2.Clusters[k] = v
		}
	}
	tbl, err := router.Compile(&s2, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.Outbound.Chain(0).Routes.VirtualHost("billing.finance:9000").Route(httptest.NewRequest("GET", "/", nil))
	if rt == nil || rt.ClusterName != billing9000 || rt.Cluster != nil {
		t.Errorf("route = %+v, want cluster name and no cluster", rt)
	}
}

func BenchmarkLookup(b *testing.B) {
	tbl := compileB(b)
	req := httptest.NewRequest("GET", "/api/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		rt := tbl.Outbound.Chain(0).Routes.VirtualHost("payment.shop:8080").Route(req)
		if rt.Cluster.Picker.Pick() == nil {
			b.Fatal("no endpoint")
		}
	}
}

func compileB(b *testing.B) *router.Table {
	r := resources()
	s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := router.Compile(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}

// TestClusterConfigKeptWhenOnlyEndpointsChange: a cluster whose resource
// did not change keeps what it says (picker policy, circuit breakers,
// outlier detection) when only its assignment changed; a changed resource
// is read again.
func TestClusterConfigKeptWhenOnlyEndpointsChange(t *testing.T) {
	r := resources()
	c := r.Clusters[1] // payment8080
	c.LbPolicy = cluster.Cluster_LEAST_REQUEST
	c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(7)}}}
	c.OutlierDetection = &cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3)}
	t1 := compile(t, r, nil)
	c1 := t1.Clusters[payment8080]
	if c1.LB.Policy != lb.PolicyLeastRequest || c1.Limits.Thresholds().MaxRequests != 7 {
		t.Fatalf("first compile: LB %+v, thresholds %+v", c1.LB, c1.Limits.Thresholds())
	}

	r.Endpoints[1] = xdstest.Assignment(payment8080, xdstest.Endpoint{IP: "127.0.0.13", Port: 8080, TunnelPort: mesh.PortInbound})
	c2 := compile(t, r, t1).Clusters[payment8080]
	if c2.Picker == c1.Picker {
		t.Fatal("new endpoints, old picker")
	}
	if c2.LB != c1.LB || c2.Limits.Thresholds() != c1.Limits.Thresholds() || c2.Outlier != c1.Outlier {
		t.Errorf("endpoints changed: LB %+v -> %+v, thresholds %+v -> %+v, outlier kept %v",
			c1.LB, c2.LB, c1.Limits.Thresholds(), c2.Limits.Thresholds(), c2.Outlier == c1.Outlier)
	}

	c.CircuitBreakers.Thresholds[0].MaxRequests = wrapperspb.UInt32(9)
	c3 := compile(t, r, t1).Clusters[payment8080]
	if got := c3.Limits.Thresholds().MaxRequests; got != 9 {
		t.Errorf("cluster changed: max requests %d, want 9", got)
	}
}
