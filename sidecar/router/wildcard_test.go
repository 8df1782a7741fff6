package router_test

import (
	"testing"

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
