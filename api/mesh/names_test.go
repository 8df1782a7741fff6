package mesh

import "testing"

func TestClusterNameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		dir     string
		port    uint32
		host    string
		wantErr bool
	}{
		{name: "outbound", in: OutboundClusterName(8080, ServiceHost("payment", "shop", DefaultClusterDomain)), dir: "outbound", port: 8080, host: "payment.shop.svc.cluster.local"},
		{name: "inbound", in: InboundClusterName(9090), dir: "inbound", port: 9090},
		{name: "bad direction", in: "sideways|80||x", wantErr: true},
		{name: "bad port", in: "outbound|0||x", wantErr: true},
		{name: "too big port", in: "outbound|70000||x", wantErr: true},
		{name: "missing parts", in: "outbound|80|x", wantErr: true},
		{name: "subset not empty", in: "outbound|80|v1|x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, port, host, err := ParseClusterName(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseClusterName(%q) err = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if dir != tc.dir || port != tc.port || host != tc.host {
				t.Errorf("ParseClusterName(%q) = %q %d %q, want %q %d %q", tc.in, dir, port, host, tc.dir, tc.port, tc.host)
			}
		})
	}
}

func TestNodeID(t *testing.T) {
	w, ns, err := ParseNodeID(NodeID("payment-1", "shop"))
	if err != nil || w != "payment-1" || ns != "shop" {
		t.Fatalf("ParseNodeID = %q %q %v", w, ns, err)
	}
	for _, bad := range []string{"", "noDot", ".ns", "w."} {
		if _, _, err := ParseNodeID(bad); err == nil {
			t.Errorf("ParseNodeID(%q) succeeded, want error", bad)
		}
	}
}

func TestSPIFFE(t *testing.T) {
	id := SPIFFEID("cluster.local", "shop", "payment")
	if id != "spiffe://cluster.local/ns/shop/sa/payment" {
		t.Fatalf("SPIFFEID = %q", id)
	}
	ns, sa, err := ParseSPIFFEPath("/ns/shop/sa/payment")
	if err != nil || ns != "shop" || sa != "payment" {
		t.Fatalf("ParseSPIFFEPath = %q %q %v", ns, sa, err)
	}
	for _, bad := range []string{"/ns/shop", "/ns//sa/x", "/sa/x/ns/y", "ns/shop/sa/x", "/ns/a/sa/b/c"} {
		if _, _, err := ParseSPIFFEPath(bad); err == nil {
			t.Errorf("ParseSPIFFEPath(%q) succeeded, want error", bad)
		}
	}
}
