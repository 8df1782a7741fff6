package xdsproto_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/xdsproto"
	tcluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	tlistener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	_ "github.com/weftmesh/weft/api/xdsproto/envoy/config/rbac/v3"
	troute "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	trbacfilter "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/rbac/v3"
	ttls "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/transport_sockets/tls/v3"
)

// pgv is what go-control-plane's generated code provides.
type pgv interface {
	proto.Message
	ValidateAll() error
}

func goodCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "outbound|80||a.ns.svc.cluster.local",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(time.Second),
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"weft": {}}},
	}
}

func goodRoute() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "outbound",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "a",
			Domains: []string{"a.ns.svc.cluster.local"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{
						Name:                 "x-user",
						HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
					}},
				},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
					Timeout:          durationpb.New(time.Second),
				}},
			}},
		}},
	}
}

func goodListener() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: "inbound",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 15006},
		}}},
	}
}

func goodRBAC() *rbacfilterv3.RBAC {
	return &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{
		Action: rbacv3.RBAC_ALLOW,
		Policies: map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		}},
	}}
}

func goodTLS() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_URI,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}},
						}},
					},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
				},
			},
		},
		SessionTimeout: durationpb.New(time.Minute),
	}
}

// TestValidateAgreesWithPGV breaks resources one rule at a time (one case
// per rule kind the trimmed descriptors carry) and checks that
// xdsproto.Validate rejects what go-control-plane's ValidateAll rejects,
// and accepts what it accepts.
func TestValidateAgreesWithPGV(t *testing.T) {
	tests := []struct {
		name    string
		msg     func() pgv
		trimmed proto.Message
		wantErr string // "" for a valid message
	}{
		{"good cluster", func() pgv { return goodCluster() }, &tcluster.Cluster{}, ""},
		{"good route", func() pgv { return goodRoute() }, &troute.RouteConfiguration{}, ""},
		{"good listener", func() pgv { return goodListener() }, &tlistener.Listener{}, ""},
		{"good rbac", func() pgv { return goodRBAC() }, &trbacfilter.RBAC{}, ""},
		{"good tls", func() pgv { return goodTLS() }, &ttls.DownstreamTlsContext{}, ""},
		{"string min_len", func() pgv { c := goodCluster(); c.Name = ""; return c }, &tcluster.Cluster{}, "name"},
		{"duration gt", func() pgv { c := goodCluster(); c.ConnectTimeout = durationpb.New(-time.Second); return c }, &tcluster.Cluster{}, "connect_timeout"},
		{"enum defined_only", func() pgv {
			c := goodCluster()
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: 42}
			return c
		}, &tcluster.Cluster{}, "type"},
		{"oneof required", func() pgv { r := goodRoute(); r.VirtualHosts[0].Routes[0].Action = nil; return r }, &troute.RouteConfiguration{}, "action"},
		{"message required", func() pgv { r := goodRoute(); r.VirtualHosts[0].Routes[0].Match = nil; return r }, &troute.RouteConfiguration{}, "match"},
		{"repeated min_items", func() pgv { r := goodRoute(); r.VirtualHosts[0].Domains = nil; return r }, &troute.RouteConfiguration{}, "domains"},
		{"repeated items well_known_regex", func() pgv {
			r := goodRoute()
			r.VirtualHosts[0].Routes[0].Match.Headers[0].Name = "x\nuser"
			return r
		}, &troute.RouteConfiguration{}, "headers[0].name"},
		{"string pattern", func() pgv {
			r := goodRoute()
			r.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/a/"}
			return r
		}, &troute.RouteConfiguration{}, "path_separated_prefix"},
		{"uint32 lte", func() pgv {
			l := goodListener()
			l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 70000}
			return l
		}, &tlistener.Listener{}, "port_value"},
		{"map keys", func() pgv {
			c := goodCluster()
			c.Metadata.FilterMetadata[""] = &structpb.Struct{}
			return c
		}, &tcluster.Cluster{}, "filter_metadata"},
		{"double range on a wrapper-free field", func() pgv {
			c := goodCluster()
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 101}}
			return c
		}, &tcluster.Cluster{}, "healthy_panic_threshold.value"},
		{"uint32 on a wrapper", func() pgv {
			c := goodCluster()
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ChoiceCount: wrapperspb.UInt32(1),
			}}
			return c
		}, &tcluster.Cluster{}, "choice_count"},
		{"bool const", func() pgv {
			r := goodRBAC()
			r.Rules.Policies["p"].Permissions[0].Rule = &rbacv3.Permission_Any{Any: false}
			return r
		}, &trbacfilter.RBAC{}, "any"},
		{"enum not_in", func() pgv {
			c := goodTLS()
			c.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.MatchTypedSubjectAltNames[0].SanType = 0
			return c
		}, &ttls.DownstreamTlsContext{}, "san_type"},
		{"duration lt", func() pgv {
			c := goodTLS()
			c.SessionTimeout = &durationpb.Duration{Seconds: 1 << 33}
			return c
		}, &ttls.DownstreamTlsContext{}, "session_timeout"},
		{"any required", func() pgv {
			r := goodRoute()
			r.VirtualHosts[0].Routes[0].GetRoute().PathRewritePolicy = &corev3.TypedExtensionConfig{Name: "x"}
			return r
		}, &troute.RouteConfiguration{}, "typed_config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg()
			pgvErr := m.ValidateAll()
			if (pgvErr != nil) != (tc.wantErr != "") {
				t.Fatalf("go-control-plane ValidateAll = %v: the case does not test what it says", pgvErr)
			}
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = xdsproto.Unpack(&anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}, tc.trimmed)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Unpack = %v, want nil (ValidateAll accepts it)", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Unpack accepted it; ValidateAll says %v", pgvErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Unpack = %v, want it to name %q", err, tc.wantErr)
			}
		})
	}
}

// TestCheckRules: every PGV rule the trimmed descriptors carry is one
// Validate implements.
func TestCheckRules(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), xdsproto.Prefix) {
			return true
		}
		n++
		if err := xdsproto.CheckRules(fd); err != nil {
			t.Errorf("%s: %v", fd.Path(), err)
		}
		return true
	})
	if n < 5 {
		t.Fatalf("only %d trimmed files linked", n)
	}
}

func TestUnpackWrongType(t *testing.T) {
	a, err := anypb.New(goodRoute())
	if err != nil {
		t.Fatal(err)
	}
	if err := xdsproto.Unpack(a, &tcluster.Cluster{}); err == nil {
		t.Fatal("a route unpacked into a cluster")
	}
}

func TestTypes(t *testing.T) {
	mt, err := xdsproto.Types{}.FindMessageByURL("type.googleapis.com/envoy.config.cluster.v3.Cluster")
	if err != nil {
		t.Fatal(err)
	}
	if got := mt.Descriptor().FullName(); got != "weft.xds.envoy.config.cluster.v3.Cluster" {
		t.Errorf("resolved %s", got)
	}
	if got := xdsproto.TypeURL(&tcluster.Cluster{}); got != "type.googleapis.com/envoy.config.cluster.v3.Cluster" {
		t.Errorf("TypeURL = %s", got)
	}
	if _, err := (xdsproto.Types{}).FindMessageByName("envoy.no.Such"); !errors.Is(err, protoregistry.NotFound) {
		t.Errorf("unknown name: %v", err)
	}
}

// meshCluster is an outbound cluster as the control plane sends it (EDS,
// circuit breakers, outlier detection, HTTP/2 options, the mTLS socket,
// metadata), in its trimmed type.
func meshCluster(t testing.TB) *tcluster.Cluster {
	t.Helper()
	opts, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: goodTLS().GetCommonTlsContext()})
	if err != nil {
		t.Fatal(err)
	}
	c := goodCluster()
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1024), MaxPendingRequests: wrapperspb.UInt32(1024), MaxRequests: wrapperspb.UInt32(1024),
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 20}, MinRetryConcurrency: wrapperspb.UInt32(3)},
	}}}
	c.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx: wrapperspb.UInt32(5), Interval: durationpb.New(5 * time.Second), BaseEjectionTime: durationpb.New(30 * time.Second),
		MaxEjectionPercent: wrapperspb.UInt32(50), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100), MaxEjectionTime: durationpb.New(300 * time.Second),
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx}}
	if err := c.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out := &tcluster.Cluster{}
	if err := xdsproto.UnmarshalAny(&anypb.Any{TypeUrl: xdsproto.TypeURL(out), Value: b}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestValidateAllocations: checking a valid resource allocates nothing
// per field it visits (the path of a field is made only for an error).
// A 10,000-Service configuration allocated 240 MB in Validate when every
// field visited built its path string, which doubled the sidecar's peak
// memory while it applied the configuration.
func TestValidateAllocations(t *testing.T) {
	c := meshCluster(t)
	if err := xdsproto.Validate(c); err != nil {
		t.Fatal(err)
	}
	// What is left: the map walks (a map view and a Range callback each:
	// metadata, its Struct, the protocol options) and the durations' bounds.
	// Building a path string per field visited made it 118.
	const most = 24
	if n := testing.AllocsPerRun(100, func() { _ = xdsproto.Validate(c) }); n > most {
		t.Errorf("Validate(mesh cluster) allocates %v times, want at most %d", n, most)
	}
}

// TestValidatePaths: an error names the field by its whole path, through
// nested messages, list items and map values.
func TestValidatePaths(t *testing.T) {
	r := goodRoute()
	r.VirtualHosts = append(r.VirtualHosts, goodRoute().VirtualHosts[0])
	r.VirtualHosts[1].Routes[0].Match.Headers[0].Name = "x\nuser"
	c := goodCluster()
	c.Metadata.FilterMetadata[""] = &structpb.Struct{}
	rb := goodRBAC()
	rb.Rules.Policies["p"].Permissions[0].Rule = &rbacv3.Permission_Any{Any: false}
	for _, tc := range []struct {
		msg     proto.Message
		trimmed proto.Message
		want    string
	}{
		{r, &troute.RouteConfiguration{}, "virtual_hosts[1].routes[0].match.headers[0].name: "},
		{c, &tcluster.Cluster{}, "metadata.filter_metadata[]: "},
		{rb, &trbacfilter.RBAC{}, "rules.policies[p].permissions[0].any: "},
	} {
		b, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		err = xdsproto.Unpack(&anypb.Any{TypeUrl: xdsproto.TypeURL(tc.trimmed), Value: b}, tc.trimmed)
		if err == nil || !strings.HasPrefix(err.Error(), "invalid: "+tc.want) {
			t.Errorf("Unpack(%T) = %v, want %q", tc.msg, err, "invalid: "+tc.want+"...")
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	c := meshCluster(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := xdsproto.Validate(c); err != nil {
			b.Fatal(err)
		}
	}
}
