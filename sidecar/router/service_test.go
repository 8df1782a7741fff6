package router

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

func TestClusterService(t *testing.T) {
	two := &Cluster{Services: []string{"billing.shop.svc.cluster.local", "payment.shop.svc.cluster.local"}}
	one := &Cluster{Services: []string{"payment.shop.svc.cluster.local"}}
	tests := []struct {
		name string
		c    *Cluster
		host string
		want string
	}{
		{"none", &Cluster{}, "payment.shop:8080", ""},
		{"one service, any host", one, "10.0.0.7:8080", "payment.shop.svc.cluster.local"},
		{"two, short name", two, "payment:8080", "payment.shop.svc.cluster.local"},
		{"two, name.namespace", two, "billing.shop:9090", "billing.shop.svc.cluster.local"},
		{"two, .svc", two, "billing.shop.svc", "billing.shop.svc.cluster.local"},
		{"two, fqdn with dot", two, "Payment.Shop.svc.cluster.local.:8080", "payment.shop.svc.cluster.local"},
		{"two, prefix of a label is not a match", two, "pay:8080", ""},
		{"two, address", two, "10.0.0.7:8080", ""},
		{"two, ipv6 address", two, "[fd00::7]:8080", ""},
		{"two, empty", two, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Service(tc.host); got != tc.want {
				t.Errorf("Service(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _ = two.Service("payment.shop:8080") }); n != 0 {
		t.Errorf("Service allocates %v times", n)
	}
}

func TestServicesFromMetadata(t *testing.T) {
	list, err := structpb.NewList([]any{"a.shop.svc.cluster.local", "b.shop.svc.cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster.Cluster{Metadata: &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{mesh.MetadataServices: structpb.NewListValue(list)}},
	}}}
	if got, want := services(c), []string{"a.shop.svc.cluster.local", "b.shop.svc.cluster.local"}; !slices.Equal(got, want) {
		t.Errorf("services = %q, want %q", got, want)
	}
	if got := services(&cluster.Cluster{}); got != nil {
		t.Errorf("services of a cluster without metadata = %q", got)
	}
}
