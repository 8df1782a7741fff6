package xdsclient

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/xdsproto"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

// TestClusterSameResource: clusters are the same when decoded from the
// same bytes, or from other bytes that decode equal (fields in another
// order), and not when a field differs; Resource gives the cluster back.
func TestClusterSameResource(t *testing.T) {
	md := &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"weft": {Fields: map[string]*structpb.Value{
		"service_host":      structpb.NewStringValue("a.ns.svc.cluster.local"),
		"service_addresses": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("10.96.0.1"), structpb.NewNumberValue(1)}}),
	}}}}
	head := &cluster.Cluster{
		Name:                 "outbound|80||a.ns.svc.cluster.local",
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{EdsConfig: &core.ConfigSource{
			ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		}},
	}
	tail := &cluster.Cluster{ConnectTimeout: durationpb.New(time.Second), Metadata: md}
	enc := func(ms ...proto.Message) []byte {
		var b []byte
		for _, m := range ms {
			mb, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, mb...) // concatenated messages decode merged
		}
		return b
	}
	decode := func(b []byte) *Cluster {
		c, err := decodeCluster(&anypb.Any{TypeUrl: xdsproto.TypeURL(&cluster.Cluster{}), Value: b})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := decode(enc(head, tail))
	if a.Type != cluster.Cluster_EDS || a.EDSName != head.Name || a.ConnectTimeout != time.Second ||
		a.ServiceHost != "a.ns.svc.cluster.local" || !slices.Equal(a.ServiceAddresses, []string{"10.96.0.1", ""}) {
		t.Errorf("decoded %+v", a)
	}
	if h, as := serviceMetadata(nil); h != "" || as != nil {
		t.Errorf("no metadata: %q, %q", h, as)
	}
	empty := &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"weft": {Fields: map[string]*structpb.Value{
		"service_addresses": structpb.NewListValue(&structpb.ListValue{}),
	}}}}
	if _, as := serviceMetadata(empty); as == nil || len(as) != 0 {
		t.Errorf("empty address list: %#v, want empty, not nil (a headless service)", as)
	}
	same, reordered := decode(enc(head, tail)), decode(enc(tail, head))
	if bytes.Equal(a.raw, reordered.raw) {
		t.Fatal("the reordered encoding is the same bytes: the case does not test what it says")
	}
	longer := proto.Clone(tail).(*cluster.Cluster)
	longer.ConnectTimeout = durationpb.New(2 * time.Second)
	other := decode(enc(head, longer))
	for _, tc := range []struct {
		name string
		b    *Cluster
		want bool
	}{{"same bytes", same, true}, {"reordered", reordered, true}, {"other timeout", other, false}} {
		if got := a.SameResource(tc.b); got != tc.want {
			t.Errorf("%s: SameResource = %v, want %v", tc.name, got, tc.want)
		}
	}
	res, err := a.Resource()
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(head).(*cluster.Cluster)
	proto.Merge(want, tail)
	if !proto.Equal(res, want) {
		t.Errorf("Resource() = %v, want %v", res, want)
	}
}
