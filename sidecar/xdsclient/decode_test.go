package xdsclient_test

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
	tendpoint "github.com/weftmesh/weft/api/xdsproto/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

func build(r xdstest.Resources) (*xdsclient.Snapshot, error) {
	return xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
}

func rewriteHCM(t *testing.T, fc *listener.FilterChain, f func(*hcm.HttpConnectionManager)) {
	t.Helper()
	m := &hcm.HttpConnectionManager{}
	if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	f(m)
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	fc.Filters[0].ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(t *testing.T, r *xdstest.Resources)
		wantErr []string // substrings; none: valid
	}{
		{name: "contract config", mutate: func(*testing.T, *xdstest.Resources) {}},
		{
			name: "tunnel port as a string",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				md := r.Endpoints[0].Endpoints[0].LbEndpoints[0].Metadata.FilterMetadata[mesh.MetadataNamespace]
				md.Fields[mesh.MetadataTunnelPort] = structpb.NewStringValue("15006")
			},
		},
		{
			name: "tunnel port out of range",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				md := r.Endpoints[0].Endpoints[0].LbEndpoints[0].Metadata.FilterMetadata[mesh.MetadataNamespace]
				md.Fields[mesh.MetadataTunnelPort] = structpb.NewNumberValue(70000)
			},
			wantErr: []string{`endpoints "` + paymentCluster + `"`, "tunnel_port", "70000 is not a port"},
		},
		{
			name: "listener address is a name",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Listeners[0].Address.GetSocketAddress().Address = "localhost"
			},
			wantErr: []string{`listener "outbound"`, `"localhost" is not an IP address`},
		},
		{
			name: "listener with TLS transport socket",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Listeners[1].FilterChains[0].TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls"}
			},
			wantErr: []string{`listener "inbound"`, "transport_socket: typed_config"},
		},
		{
			name: "filter chain matched by server name",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Listeners[1].FilterChains[0].FilterChainMatch.ServerNames = []string{"x"}
			},
			wantErr: []string{"only destination_port and transport_protocol are supported"},
		},
		{
			name: "duplicate destination port",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				l := r.Listeners[1]
				l.FilterChains = append(l.FilterChains, xdstest.InboundListener(nodeIP, appPort).FilterChains[0])
			},
			wantErr: []string{"destination_port 8080 is matched by an earlier chain"},
		},
		{
			name: "rds not over ads",
			mutate: func(t *testing.T, r *xdstest.Resources) {
				rewriteHCM(t, r.Listeners[0].FilterChains[0], func(m *hcm.HttpConnectionManager) {
					m.GetRds().ConfigSource = &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Path{Path: "/x"}}
				})
			},
			wantErr: []string{"rds: config_source must be ads"},
		},
		{
			name: "no router filter",
			mutate: func(t *testing.T, r *xdstest.Resources) {
				rewriteHCM(t, r.Listeners[0].FilterChains[0], func(m *hcm.HttpConnectionManager) { m.HttpFilters = nil })
			},
			wantErr: []string{"router filter is required"},
		},
		{
			name: "optional unknown http filter is skipped",
			mutate: func(t *testing.T, r *xdstest.Resources) {
				rewriteHCM(t, r.Listeners[0].FilterChains[0], func(m *hcm.HttpConnectionManager) {
					a, _ := anypb.New(wrapperspb.String("x"))
					m.HttpFilters = append([]*hcm.HttpFilter{{Name: "x", IsOptional: true, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}}, m.HttpFilters...)
				})
			},
		},
		{
			name: "inline inbound route to a missing cluster",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters = r.Clusters[:1]
			},
			wantErr: []string{`listener "inbound"`, `cluster "inbound|8080||" not found`},
		},
		{
			name: "strict dns cluster",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				c := r.Clusters[1]
				c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
			},
			wantErr: []string{`cluster "inbound|8080||"`, "STRICT_DNS is not supported"},
		},
		{
			name: "maglev",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters[0].LbPolicy = cluster.Cluster_MAGLEV
			},
			wantErr: []string{"lb_policy: MAGLEV is not supported"},
		},
		{
			name: "eds not over ads",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters[0].EdsClusterConfig.EdsConfig = nil
			},
			wantErr: []string{"eds_config: must be ads"},
		},
		{
			name: "cluster with upstream TLS",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters[0].TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls"}
			},
			wantErr: []string{"transport_socket: typed_config"},
		},
		{
			name: "duplicate cluster",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters = append(r.Clusters, xdstest.OutboundCluster(svc, ns, svcPort))
			},
			wantErr: []string{"duplicate name"},
		},
		{
			name: "several errors are all reported",
			mutate: func(_ *testing.T, r *xdstest.Resources) {
				r.Clusters[0].LbPolicy = cluster.Cluster_MAGLEV
				r.Clusters[1].LbPolicy = cluster.Cluster_RING_HASH
			},
			wantErr: []string{"MAGLEV", "RING_HASH"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.mutate(t, &r)
			s, err := build(r)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("NewSnapshot: %v", err)
				}
				if !s.Complete {
					t.Error("snapshot not complete")
				}
				return
			}
			if err == nil {
				t.Fatal("NewSnapshot succeeded, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSnapshotNamesAndCompleteness(t *testing.T) {
	r := good()
	r.Endpoints = nil
	s, err := build(r)
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete {
		t.Error("complete without the EDS assignment")
	}
	if got := s.EndpointNames(); len(got) != 1 || got[0] != paymentCluster {
		t.Errorf("EndpointNames = %v", got)
	}
	if got := s.RouteNames(); len(got) != 1 || got[0] != mesh.RouteOutbound {
		t.Errorf("RouteNames = %v", got)
	}
}

// TestAssignmentResource: an assignment gives back the resource it was
// decoded from (the config dump reads it): an EDS one from its wire form,
// a STATIC cluster's inline one as its cluster holds it.
func TestAssignmentResource(t *testing.T) {
	r := good()
	s, err := build(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Endpoints[paymentCluster].Resource()
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(r.Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	wantCLA := &tendpoint.ClusterLoadAssignment{}
	if err := proto.Unmarshal(want, wantCLA); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, wantCLA) || got.GetClusterName() != paymentCluster || len(got.GetEndpoints()) != 1 {
		t.Errorf("Resource() = %v, want %v", got, wantCLA)
	}
	in := s.Clusters[mesh.InboundClusterName(appPort)]
	static, err := in.Static.Resource()
	if err != nil {
		t.Fatal(err)
	}
	inRes, err := in.Resource()
	if err != nil {
		t.Fatal(err)
	}
	if static == nil || !proto.Equal(static, inRes.GetLoadAssignment()) {
		t.Errorf("STATIC Resource() = %v; want the cluster's load_assignment %v", static, inRes.GetLoadAssignment())
	}
}
