package router_test

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// One-label "*.<suffix>" domains (docs/architecture.md, Egress contract).
func TestWildcardDomain(t *testing.T) {
	r := resources()
	vh := r.Routes[0].VirtualHosts[0]
	vh.Domains = append(vh.Domains, "*.cdn.example:443")
	s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := router.Compile(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes := tbl.Outbound.Chain(0).Routes
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"a.cdn.example:443", true},
		{"A.CDN.example:443", true},
		{"cdn.example:443", false},
		{"a.b.cdn.example:443", false},
		{".cdn.example:443", false},
		{"a.cdn.example:80", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			got := routes.VirtualHost(tc.host)
			if (got != nil && got.Name == vh.GetName()) != tc.want {
				t.Errorf("VirtualHost(%q) = %v, want match %v", tc.host, got, tc.want)
			}
		})
	}
}

// CONNECT targets by address: Weft virtual host metadata egress_addresses
// (docs/architecture.md, Egress contract).
func TestEgressAddresses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		addrs   []string
		host    string
		want    bool
		wantErr bool
	}{
		{"inside the cidr", []string{"203.0.113.0/24:5432"}, "203.0.113.7:5432", true, false},
		{"outside the cidr", []string{"203.0.113.0/24:5432"}, "203.0.114.7:5432", false, false},
		{"other port", []string{"203.0.113.0/24:5432"}, "203.0.113.7:5433", false, false},
		{"a name is not an address", []string{"203.0.113.0/24:5432"}, "db.example:5432", false, false},
		{"single address", []string{"192.0.2.10/32:5432"}, "192.0.2.10:5432", true, false},
		{"ipv6", []string{"[2001:db8::/32]:5432"}, "[2001:db8::7]:5432", true, false},
		{"ipv4-mapped ipv6 target", []string{"203.0.113.0/24:5432"}, "[::ffff:203.0.113.7]:5432", true, false},
		{"not a cidr", []string{"db.example:5432"}, "", false, true},
		{"no port", []string{"203.0.113.0/24"}, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := resources()
			vh := r.Routes[0].VirtualHosts[0]
			var vals []*structpb.Value
			for _, a := range tc.addrs {
				vals = append(vals, structpb.NewStringValue(a))
			}
			vh.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{
				mesh.MetadataEgressAddresses: structpb.NewListValue(&structpb.ListValue{Values: vals}),
			}}}}
			s, err := xdsclient.NewSnapshot(r.Listeners, r.Routes, r.Clusters, r.Endpoints)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := router.Compile(s, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Compile accepted a bad egress_addresses entry")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := tbl.Outbound.Chain(0).Routes.VirtualHost(tc.host)
			if (got != nil && got.Name == vh.GetName()) != tc.want {
				t.Errorf("VirtualHost(%q) = %v, want match %v", tc.host, got, tc.want)
			}
		})
	}
}
