package translate

import (
	"os"
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

func buildSimple(t *testing.T) *Resources {
	t.Helper()
	data, err := os.ReadFile("testdata/simple.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.Parse("simple.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := st.Workload("frontend.shop")
	if !ok {
		t.Fatal("no frontend.shop")
	}
	r, err := Build(st, w, meshconfig.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *Resources)
		want   string
	}{
		{"missing assignment", func(r *Resources) { r.Endpoints = nil }, "has no ClusterLoadAssignment"},
		{"orphan assignment", func(r *Resources) { r.Endpoints[0].ClusterName = "outbound|1||x" }, "belong to no EDS cluster"},
		{"unknown route cluster", func(r *Resources) {
			r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &route.RouteAction_Cluster{Cluster: "nope"}
		}, `routes to unknown cluster "nope"`},
		{"unknown weighted cluster", func(r *Resources) {
			r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{
				Clusters: []*route.WeightedCluster_ClusterWeight{{Name: "nope", Weight: wrapperspb.UInt32(1)}},
			}}
		}, `splits to unknown cluster "nope"`},
		{"invalid retry policy", func(r *Resources) {
			r.Routes[0].VirtualHosts[0].Routes[0].GetRoute().GetRetryPolicy().RetryBackOff.BaseInterval = durationpb.New(0)
		}, "BaseInterval"},
		{"missing RDS", func(r *Resources) { r.Routes = nil }, `RDS route "outbound" is not defined`},
		{"invalid resource", func(r *Resources) { r.Clusters[0].Name = "" }, "Cluster.Name"},
		{"duplicate listener", func(r *Resources) { r.Listeners = append(r.Listeners, r.Listeners[0]) }, "defined twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := buildSimple(t)
			if err := Check(r); err != nil {
				t.Fatalf("Check(good) = %v", err)
			}
			tc.mutate(r)
			err := Check(r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildUnknownWorkloadIsValid(t *testing.T) {
	// A proxy whose workload has no inbound ports still gets both listeners.
	r, err := Build(model.State{}, model.Workload{Name: "x", Namespace: "y", Address: "127.0.0.9"}, meshconfig.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Listeners) != 2 || len(r.Routes) != 1 || len(r.Clusters) != 0 {
		t.Fatalf("Build(empty) = %d listeners, %d routes, %d clusters", len(r.Listeners), len(r.Routes), len(r.Clusters))
	}
}

func TestBuildBadAddressFails(t *testing.T) {
	if _, err := Build(model.State{}, model.Workload{Name: "x", Namespace: "y"}, meshconfig.Config{}); err == nil {
		t.Fatal("Build with an empty workload address succeeded")
	}
}
