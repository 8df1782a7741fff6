package egress

import (
	"net/netip"
	"testing"
)

func TestMatchHost(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.Example.com.", true},
		{"api.example.com", "example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "A.EXAMPLE.COM", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "aexample.com", false},
	} {
		t.Run(tc.pattern+"/"+tc.host, func(t *testing.T) {
			if got := MatchHost(tc.pattern, tc.host); got != tc.want {
				t.Errorf("MatchHost(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
			}
		})
	}
}

func testIndex(t *testing.T) *Index {
	t.Helper()
	ix, err := Compile(Table{Destinations: []Destination{
		{
			Name: "shop/api", Hosts: []string{"api.example.com"}, Port: 80, Protocol: ProtocolHTTP, Resolution: ResolutionDNS,
			Rules: []Rule{{Principals: []string{"spiffe://td/ns/shop/sa/order"}, Methods: []string{"GET"}, Paths: []string{"/v1/*"}}},
		},
		{
			Name: "shop/cdn", Hosts: []string{"*.cdn.example.com"}, Port: 443, Protocol: ProtocolTLS, Resolution: ResolutionDNS,
			Rules: []Rule{{Principals: []string{"spiffe://td/ns/shop/sa/*"}}},
		},
		{
			Name: "shop/db", Port: 5432, Protocol: ProtocolTCP, Resolution: ResolutionDNS, Addresses: []string{"10.1.0.0/16"},
			Rules: []Rule{{Principals: []string{"*"}}},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestLookupAndAllow(t *testing.T) {
	ix := testIndex(t)
	for _, tc := range []struct {
		name                    string
		host                    string
		port                    uint32
		principal, method, path string
		wantDest                string
		wantAllowed             bool
	}{
		{"exact allowed", "api.example.com", 80, "spiffe://td/ns/shop/sa/order", "GET", "/v1/x", "shop/api", true},
		{"exact wrong method", "api.example.com", 80, "spiffe://td/ns/shop/sa/order", "POST", "/v1/x", "shop/api", false},
		{"exact wrong path", "api.example.com", 80, "spiffe://td/ns/shop/sa/order", "GET", "/v2", "shop/api", false},
		{"exact other identity", "api.example.com", 80, "spiffe://td/ns/shop/sa/rogue", "GET", "/v1/x", "shop/api", false},
		{"no identity", "api.example.com", 80, "", "GET", "/v1/x", "shop/api", false},
		{"wrong port", "api.example.com", 443, "spiffe://td/ns/shop/sa/order", "GET", "/", "", false},
		{"wildcard one label", "x.cdn.example.com", 443, "spiffe://td/ns/shop/sa/any", "", "", "shop/cdn", true},
		{"wildcard apex", "cdn.example.com", 443, "spiffe://td/ns/shop/sa/any", "", "", "", false},
		{"wildcard deeper", "a.x.cdn.example.com", 443, "spiffe://td/ns/shop/sa/any", "", "", "", false},
		{"wildcard other ns", "x.cdn.example.com", 443, "spiffe://td/ns/other/sa/any", "", "", "shop/cdn", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ix.Lookup(tc.host, tc.port)
			got := ""
			if d != nil {
				got = d.Name
			}
			if got != tc.wantDest {
				t.Fatalf("Lookup(%q, %d) = %q, want %q", tc.host, tc.port, got, tc.wantDest)
			}
			if d != nil && d.Allows(tc.principal, tc.method, tc.path) != tc.wantAllowed {
				t.Errorf("Allows = %v, want %v", !tc.wantAllowed, tc.wantAllowed)
			}
		})
	}
	if d := ix.LookupAddress(netip.MustParseAddr("10.1.2.3"), 5432); d == nil || d.Name != "shop/db" {
		t.Errorf("LookupAddress in CIDR = %v", d)
	}
	if d := ix.LookupAddress(netip.MustParseAddr("10.2.2.3"), 5432); d != nil {
		t.Errorf("LookupAddress outside CIDR = %v", d.Name)
	}
}

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Table
	}{
		{"duplicate host port", Table{Destinations: []Destination{
			{Name: "a/a", Hosts: []string{"x.com"}, Port: 443, Protocol: ProtocolTLS},
			{Name: "b/b", Hosts: []string{"X.com"}, Port: 443, Protocol: ProtocolTLS},
		}}},
		{"bad protocol", Table{Destinations: []Destination{{Name: "a/a", Hosts: []string{"x.com"}, Port: 1, Protocol: "UDP"}}}},
		{"bad host", Table{Destinations: []Destination{{Name: "a/a", Hosts: []string{"a..com"}, Port: 1, Protocol: ProtocolTCP}}}},
		{"deep wildcard", Table{Destinations: []Destination{{Name: "a/a", Hosts: []string{"*.*.com"}, Port: 1, Protocol: ProtocolTCP}}}},
		{"bad cidr", Table{Destinations: []Destination{{Name: "a/a", Port: 1, Protocol: ProtocolTCP, Addresses: []string{"10.0.0.0/33"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compile(tc.t); err == nil {
				t.Error("Compile accepted it")
			}
		})
	}
}
