package local

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/examples/shop/app"
)

// peerSVID signs an SVID for id with authority a (optionally back in time).
func peerSVID(t *testing.T, a *ca.Authority, who ca.Identity, id string, ttl time.Duration) *x509svid.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*neturl.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := a.SignCSR(der, who, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: issued.Chain, PrivateKey: key}
}

// authority is a CA for trust domain td: the mesh's own (from its CA
// directory) when dir is set, else a new rogue root.
func authority(t *testing.T, td, dir string, now func() time.Time) *ca.Authority {
	t.Helper()
	d := spiffeid.RequireTrustDomainFromString(td)
	opts := []ca.Option{ca.WithClock(now), ca.WithBackdate(time.Second)}
	if dir != "" {
		a, err := ca.Open(t.Context(), d, ca.NewDirStore(dir), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	m, err := ca.GenerateRoot(d, time.Hour, now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(d, m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestMTLSPeerRefusals dials a real sidecar's inbound (payment-1, STRICT)
// as a peer sidecar would — TLS 1.3, ALPN h2, the mesh bundle to verify the
// server — presenting certificates that must be refused: expired, from
// another trust domain, from a rogue CA claiming a valid mesh ID. The
// control (a valid mesh certificate) must be served, so the test can fail.
func TestMTLSPeerRefusals(t *testing.T) {
	e := startSecureMesh(t, meshParams{Base: randomBase(), Payment2: "no"})
	td := e.m.TrustDomain()
	orderID := mesh.SPIFFEID(td, "shop", "order")
	order := ca.Identity{Namespace: "shop", ServiceAccount: "order", Workload: "order-1"}
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString(td), e.m.TrustBundleFile())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := e.m.Workload("payment-1")
	now := time.Now

	cases := []struct {
		name    string
		svid    func() *x509svid.SVID
		refused bool
	}{
		{"valid mesh certificate (control)", func() *x509svid.SVID {
			return peerSVID(t, authority(t, td, e.m.CADir(), now), order, orderID, time.Hour)
		}, false},
		{"expired", func() *x509svid.SVID {
			s := peerSVID(t, authority(t, td, e.m.CADir(), now), order, orderID, time.Second)
			for time.Now().Before(s.Certificates[0].NotAfter.Add(100 * time.Millisecond)) {
				time.Sleep(50 * time.Millisecond)
			}
			return s
		}, true},
		{"other trust domain", func() *x509svid.SVID {
			return peerSVID(t, authority(t, "evil.example", "", now), order, mesh.SPIFFEID("evil.example", "shop", "order"), time.Hour)
		}, true},
		{"rogue CA claiming a mesh identity", func() *x509svid.SVID {
			return peerSVID(t, authority(t, td, "", now), order, orderID, time.Hour)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svid := c.svid()
			tc := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeID(spiffeid.RequireFromString(mesh.SPIFFEID(td, "shop", "payment"))))
			tc.NextProtos = []string{"h2"}
			hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: tc, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
			off := e.logOffset(sidecarLog(w))
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+w.InboundAddress()+app.PathPay, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(mesh.HeaderTargetPort, "8080")
			resp, err := hc.Do(req)
			outcome := ""
			if err != nil {
				outcome = err.Error()
			} else {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				_ = resp.Body.Close()
				outcome = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
				if !c.refused && resp.StatusCode != http.StatusOK {
					t.Fatalf("valid certificate: %s", outcome)
				}
			}
			if !c.refused {
				if err != nil {
					t.Fatalf("valid certificate: %v", err)
				}
				t.Logf("served: %.80s", outcome)
				return
			}
			if err == nil && resp.StatusCode == http.StatusOK {
				t.Fatalf("%s: served: %s", c.name, outcome)
			}
			line, ok := e.waitLogLine(sidecarLog(w), off, 5*time.Second, func(l string) bool {
				return strings.Contains(l, "level=WARN") && strings.Contains(l, "refused peer certificate")
			})
			if !ok {
				t.Fatalf("%s: no refusal in payment-1's sidecar log (client saw: %s)", c.name, outcome)
			}
			t.Logf("client saw: %.120s; logged: %s", outcome, line)
		})
	}
}
