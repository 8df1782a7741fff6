package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/sidecar/internal/testca"
)

func TestCSR(t *testing.T) {
	m, err := New(paymentID, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	parse := func() *x509.CertificateRequest {
		b, err := m.CSR()
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatal(err)
		}
		return csr
	}
	csr := parse()
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("CSR key %T, want ECDSA P-256", csr.PublicKey)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != paymentID.String() || len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) != 0 {
		t.Fatalf("CSR SANs %v %v %v %v, want only %s", csr.URIs, csr.DNSNames, csr.IPAddresses, csr.EmailAddresses, paymentID)
	}
	if !parse().PublicKey.(*ecdsa.PublicKey).Equal(pub) {
		t.Error("a retried CSR (no certificate installed in between) changed key")
	}
	ca := testca.New(t, "root", time.Hour)
	if err := m.renew(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	if parse().PublicKey.(*ecdsa.PublicKey).Equal(pub) {
		t.Error("the CSR after a renewal reuses the old key")
	}
}

// TestSetX509SVID covers certificates pushed from outside (SDS): accepted
// only for one of the workload's keys, for its ID, verified by the bundle.
func TestSetX509SVID(t *testing.T) {
	ca := testca.New(t, "root", time.Hour)
	rogue := testca.New(t, "rogue", time.Hour)
	m := newManager(t, ca, paymentID)
	now := time.Now()
	cur, err := m.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	curKey := cur.PrivateKey.(*ecdsa.PrivateKey)
	// A CSR outstanding: its key is the pending key.
	csrPEM, err := m.CSR()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	window := func() (time.Time, time.Time) { return now.Add(-time.Minute), now.Add(time.Hour) }
	nb, na := window()

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		wantErr string
		wantKey *ecdsa.PublicKey
	}{
		{name: "key of nobody", chain: []*x509.Certificate{issue(t, ca, testca.Key(t).Public(), paymentID.String(), nb, na)}, wantErr: "not this workload's key"},
		{name: "another ID", chain: []*x509.Certificate{issue(t, ca, curKey.Public(), cartID.String(), nb, na)}, wantErr: "not spiffe://cluster.local/ns/shop/sa/payment"},
		{name: "rogue CA", chain: []*x509.Certificate{issue(t, rogue, curKey.Public(), paymentID.String(), nb, na)}, wantErr: "unknown authority"},
		{name: "expired", chain: []*x509.Certificate{issue(t, ca, curKey.Public(), paymentID.String(), now.Add(-2*time.Hour), now.Add(-time.Hour))}, wantErr: "expired"},
		{name: "empty", wantErr: "empty certificate chain"},
		{name: "re-push for the current key", chain: []*x509.Certificate{issue(t, ca, curKey.Public(), paymentID.String(), nb, na)}, wantKey: &curKey.PublicKey},
		{name: "push for the pending key", chain: []*x509.Certificate{issue(t, ca, csr.PublicKey, paymentID.String(), nb, na)}, wantKey: csr.PublicKey.(*ecdsa.PublicKey)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Status().Serial
			err := m.SetX509SVID(tc.chain)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SetX509SVID err = %v, want one saying %q", err, tc.wantErr)
				}
				if m.Status().Serial != before {
					t.Fatal("a refused chain replaced the certificate")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := m.GetX509SVID()
			if err != nil {
				t.Fatal(err)
			}
			if !s.Certificates[0].Equal(tc.chain[0]) || !tc.wantKey.Equal(s.PrivateKey.Public()) {
				t.Fatal("the pushed chain is not the current SVID with its matching key")
			}
		})
	}
}

func TestBundleAndPEM(t *testing.T) {
	ca := testca.New(t, "root", time.Hour)
	m := newManager(t, ca, paymentID)
	if _, err := m.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("evil.example")); err == nil {
		t.Error("bundle returned for another trust domain")
	}
	other := testca.New(t, "root 2", time.Hour)
	pemBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
	pemBundle = append(pemBundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Root.Raw})...)
	roots, err := ParseCertificatesPEM(pemBundle)
	if err != nil || len(roots) != 2 {
		t.Fatalf("ParseCertificatesPEM = %d, %v", len(roots), err)
	}
	changed := m.Changed()
	if err := m.SetBundle(roots); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("SetBundle did not signal a change")
	}
	if st := m.Status(); st.Roots != 2 || st.Serial == "" || st.ID != paymentID {
		t.Errorf("Status = %+v", st)
	}
	for _, bad := range []string{"", "junk", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParseCertificatesPEM([]byte(bad)); err == nil {
			t.Errorf("ParseCertificatesPEM(%q) succeeded", bad)
		}
	}
	if err := m.SetBundle(nil); err == nil {
		t.Error("empty bundle accepted")
	}
	fresh, err := New(paymentID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.GetX509SVID(); err == nil {
		t.Error("GetX509SVID before any certificate succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := fresh.WaitReady(ctx); err == nil {
		t.Error("WaitReady without a certificate returned nil")
	}
}
