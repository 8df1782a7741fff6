package ca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/api/mesh"
)

func TestOpenGeneratesPersistsAndReloads(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	a, err := Open(ctx, testTD, NewDirStore(dir), WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("Open (first start): %v", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("store dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	for _, f := range []string{FileCertChain, FileKey, FileBundle} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
	root := a.Bundle()[0]
	if got := root.URIs; len(got) != 1 || got[0].String() != "spiffe://cluster.local" {
		t.Errorf("root URI SANs = %v, want spiffe://cluster.local", got)
	}

	b, err := Open(ctx, testTD, NewDirStore(dir), WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("Open (restart): %v", err)
	}
	if len(b.Bundle()) != 1 || !b.Bundle()[0].Equal(root) || !b.SigningCertificate().Equal(root) {
		t.Fatal("restart did not reload the same root")
	}

	if err := os.Chmod(filepath.Join(dir, FileKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, testTD, NewDirStore(dir)); err == nil || !strings.Contains(err.Error(), "want 0600") {
		t.Fatalf("Open with a world-readable key: err = %v, want a mode error", err)
	}
	if err := os.Remove(filepath.Join(dir, FileBundle)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, FileKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, testTD, NewDirStore(dir)); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("Open with a missing file: err = %v, want incomplete", err)
	}
}

func TestSignCSRCertificate(t *testing.T) {
	a := newTestAuthority(t)
	key := p256(t)
	before := time.Now()
	issued, err := a.SignCSR(spiffeCSR(t, key, "shop", "payment"), paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 1 || len(issued.Bundle) != 1 {
		t.Fatalf("chain %d certs, bundle %d; want 1 and 1 (signed by the root)", len(issued.Chain), len(issued.Bundle))
	}
	leaf := issued.Chain[0]
	if want := mesh.SPIFFEID("cluster.local", "shop", "payment"); len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Errorf("URIs = %v, want [%s]", leaf.URIs, want)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("extra SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want digitalSignature", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v, want serverAuth, clientAuth", leaf.ExtKeyUsage)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("IsCA = %v, BasicConstraintsValid = %v", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("certificate key is not the CSR's key")
	}
	if n := leaf.SerialNumber.BitLen(); n < 100 || n > 128 {
		t.Errorf("serial has %d bits, want a random 128-bit number", n)
	}
	if d := before.Sub(leaf.NotBefore); d < 50*time.Second || d > 70*time.Second {
		t.Errorf("NotBefore backdated by %s, want about %s", d, DefaultBackdate)
	}
	if d := leaf.NotAfter.Sub(before); d < mesh.DefaultCertLifetime-time.Minute || d > mesh.DefaultCertLifetime+time.Minute {
		t.Errorf("lifetime %s, want %s", d, mesh.DefaultCertLifetime)
	}
	// The SVID is a valid go-spiffe X509-SVID against the bundle.
	bundle := x509bundle.FromX509Authorities(testTD, issued.Bundle)
	id, _, err := x509svid.Verify(issued.Chain, bundle)
	if err != nil || id.String() != mesh.SPIFFEID("cluster.local", "shop", "payment") {
		t.Fatalf("x509svid.Verify = %v, %v", id, err)
	}
	other, err := a.SignCSR(spiffeCSR(t, key, "shop", "payment"), paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if other.Chain[0].SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
}

func TestSignCSRLifetime(t *testing.T) {
	shortRoot := func(t *testing.T) Material {
		k := p256(t)
		root := caCert(t, "short root", k, nil, nil, time.Now().Add(time.Hour))
		return Material{CertChainPEM: pemOf(root), KeyPEM: keyPEM(t, k)}
	}
	tests := []struct {
		name     string
		material func(t *testing.T) Material
		opts     []Option
		ask      time.Duration
		want     time.Duration
	}{
		{name: "default", want: mesh.DefaultCertLifetime},
		{name: "configured default", opts: []Option{WithLifetime(3 * time.Second)}, want: 3 * time.Second},
		{name: "asked, shorter", ask: 5 * time.Second, want: 5 * time.Second},
		{name: "asked, longer than max", ask: 48 * time.Hour, want: mesh.DefaultCertLifetime},
		{name: "asked, within configured max", opts: []Option{WithMaxLifetime(72 * time.Hour)}, ask: 48 * time.Hour, want: 48 * time.Hour},
		{name: "capped by the signer's expiry", material: shortRoot, want: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a *Authority
			if tc.material != nil {
				var err error
				if a, err = New(testTD, tc.material(t), tc.opts...); err != nil {
					t.Fatal(err)
				}
			} else {
				a = newTestAuthority(t, tc.opts...)
			}
			start := time.Now()
			issued, err := a.SignCSR(spiffeCSR(t, p256(t), "shop", "payment"), paymentID, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			got := issued.Chain[0].NotAfter.Sub(start)
			if got < tc.want-2*time.Second || got > tc.want+time.Second {
				t.Errorf("lifetime = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSignCSRRefused(t *testing.T) {
	a := newTestAuthority(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const good = "spiffe://cluster.local/ns/shop/sa/payment"
	otherNameSAN := func() []byte {
		// An otherName (tag 0) next to the URI: Go does not surface it in
		// the parsed CSR, so the raw extension must be checked.
		uri := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(good)}
		other := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{0x06, 0x03, 0x2a, 0x03, 0x04, 0xa0, 0x03, 0x0c, 0x01, 0x78}}
		v, err := asn1.Marshal([]asn1.RawValue{uri, other})
		if err != nil {
			t.Fatal(err)
		}
		return csrDER(t, p256(t), x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Value: v}}})
	}
	tampered := func() []byte {
		der := spiffeCSR(t, p256(t), "shop", "payment")
		der[len(der)-5] ^= 0xff // inside the signature
		return der
	}
	tests := []struct {
		name    string
		csr     []byte
		who     Identity
		wantErr error
		wantMsg string
	}{
		{name: "RSA key", csr: csrDER(t, rsaKey, x509.CertificateRequest{URIs: uris(t, good)}), wantErr: ErrInvalidCSR, wantMsg: "ECDSA P-256"},
		{name: "P-384 key", csr: csrDER(t, p384(t), x509.CertificateRequest{URIs: uris(t, good)}), wantErr: ErrInvalidCSR, wantMsg: "P-384"},
		{name: "extra DNS SAN", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good), DNSNames: []string{"payment.shop"}}), wantErr: ErrInvalidCSR, wantMsg: "DNS SANs"},
		{name: "extra IP SAN", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}), wantErr: ErrInvalidCSR, wantMsg: "IP SANs"},
		{name: "extra email SAN", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good), EmailAddresses: []string{"a@b.c"}}), wantErr: ErrInvalidCSR, wantMsg: "email SANs"},
		{name: "extra otherName SAN", csr: otherNameSAN(), wantErr: ErrInvalidCSR, wantMsg: "exactly one subjectAltName"},
		{name: "two URI SANs", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good, "spiffe://cluster.local/ns/shop/sa/cart")}), wantErr: ErrInvalidCSR, wantMsg: "exactly one"},
		{name: "no SAN", csr: csrDER(t, p256(t), x509.CertificateRequest{Subject: pkix.Name{CommonName: "payment"}}), wantErr: ErrInvalidCSR, wantMsg: "exactly one"},
		{name: "https URI", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "https://cluster.local/ns/shop/sa/payment")}), wantErr: ErrInvalidCSR, wantMsg: "scheme"},
		{name: "other trust domain", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "spiffe://evil.example/ns/shop/sa/payment")}), wantErr: ErrInvalidCSR, wantMsg: "not in trust domain"},
		{name: "not a Weft path", csr: csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "spiffe://cluster.local/workload/payment")}), wantErr: ErrInvalidCSR, wantMsg: "/ns/<namespace>/sa/"},
		{name: "bad signature", csr: tampered(), wantErr: ErrInvalidCSR},
		{name: "garbage", csr: []byte("not a csr"), wantErr: ErrInvalidCSR},
		{name: "another identity", csr: spiffeCSR(t, p256(t), "shop", "cart"), wantErr: ErrIdentityMismatch, wantMsg: "csr asks for spiffe://cluster.local/ns/shop/sa/cart, credential proves spiffe://cluster.local/ns/shop/sa/payment"},
		{name: "another namespace", csr: spiffeCSR(t, p256(t), "admin", "payment"), wantErr: ErrIdentityMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			who := tc.who
			if who == (Identity{}) {
				who = paymentID
			}
			issued, err := a.SignCSR(tc.csr, who, 0)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("SignCSR err = %v, want %v (issued %v)", err, tc.wantErr, issued)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

// TestSuppliedIntermediate: the user supplies an intermediate (as
// cert-manager or an enterprise PKI would issue it) with its chain and root.
func TestSuppliedIntermediate(t *testing.T) {
	rootKey, interKey, otherKey := p256(t), p256(t), p256(t)
	far := time.Now().Add(365 * 24 * time.Hour)
	root := caCert(t, "enterprise root", rootKey, nil, nil, far)
	inter := caCert(t, "mesh intermediate", interKey, root, rootKey, far)
	otherRoot := caCert(t, "other root", otherKey, nil, nil, far)
	expired := caCert(t, "expired intermediate", interKey, root, rootKey, time.Now().Add(-time.Minute))
	leafish := func() *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not a CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: far,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, interKey.Public(), rootKey)
		if err != nil {
			t.Fatal(err)
		}
		return mustCerts(t, pemOf(&x509.Certificate{Raw: der}))[0]
	}

	t.Run("valid", func(t *testing.T) {
		a, err := New(testTD, Material{CertChainPEM: pemOf(inter, root), KeyPEM: keyPEM(t, interKey), BundlePEM: pemOf(root)}, WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		issued, err := a.SignCSR(spiffeCSR(t, p256(t), "shop", "payment"), paymentID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(issued.Chain) != 2 || !issued.Chain[1].Equal(inter) {
			t.Fatalf("chain = %d certs, want leaf + intermediate", len(issued.Chain))
		}
		if len(issued.Bundle) != 1 || !issued.Bundle[0].Equal(root) {
			t.Fatal("bundle is not the enterprise root")
		}
		if _, _, err := x509svid.Verify(issued.Chain, x509bundle.FromX509Authorities(testTD, issued.Bundle)); err != nil {
			t.Fatalf("x509svid.Verify: %v", err)
		}
	})

	tests := []struct {
		name string
		m    Material
		want string
	}{
		{name: "key does not match", m: Material{CertChainPEM: pemOf(inter), KeyPEM: keyPEM(t, otherKey), BundlePEM: pemOf(root)}, want: "does not match"},
		{name: "not chaining to the bundle", m: Material{CertChainPEM: pemOf(inter), KeyPEM: keyPEM(t, interKey), BundlePEM: pemOf(otherRoot)}, want: "does not chain"},
		{name: "no bundle, chain without root", m: Material{CertChainPEM: pemOf(inter), KeyPEM: keyPEM(t, interKey)}, want: "no trust bundle"},
		{name: "expired", m: Material{CertChainPEM: pemOf(expired), KeyPEM: keyPEM(t, interKey), BundlePEM: pemOf(root)}, want: "expired"},
		{name: "not a CA", m: Material{CertChainPEM: pemOf(leafish()), KeyPEM: keyPEM(t, interKey), BundlePEM: pemOf(root)}, want: "not a CA certificate"},
		{name: "no key", m: Material{CertChainPEM: pemOf(inter), BundlePEM: pemOf(root)}, want: "CA key"},
		{name: "no certificate", m: Material{KeyPEM: keyPEM(t, interKey), BundlePEM: pemOf(root)}, want: "no PEM CERTIFICATE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testTD, tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestRootRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, testTD, NewDirStore(dir), WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	root1 := a.Bundle()[0]
	oldSVID, err := a.SignCSR(spiffeCSR(t, p256(t), "shop", "payment"), paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := GenerateRoot(testTD, 0, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	root2 := mustCerts(t, m2.CertChainPEM)[0]

	// Step 2 before step 1 is refused: the new root is not trusted yet.
	if err := a.RotateSigner(ctx, m2); err == nil || !strings.Contains(err.Error(), "AddRoot first") {
		t.Fatalf("RotateSigner before AddRoot: err = %v", err)
	}
	// Step 1.
	if err := a.AddRoot(ctx, root2); err != nil {
		t.Fatal(err)
	}
	if err := a.AddRoot(ctx, root2); err != nil || len(a.Bundle()) != 2 {
		t.Fatalf("AddRoot twice: %v, %d roots", err, len(a.Bundle()))
	}
	if !a.SigningCertificate().Equal(root1) {
		t.Fatal("AddRoot changed the signer")
	}
	// Step 2.
	if err := a.RotateSigner(ctx, m2); err != nil {
		t.Fatal(err)
	}
	newSVID, err := a.SignCSR(spiffeCSR(t, p256(t), "shop", "payment"), paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(newSVID.Bundle) != 2 {
		t.Fatalf("bundle during rotation has %d roots, want 2", len(newSVID.Bundle))
	}
	both := x509bundle.FromX509Authorities(testTD, newSVID.Bundle)
	for name, svid := range map[string]*Issued{"old-root SVID": oldSVID, "new-root SVID": newSVID} {
		if _, _, err := x509svid.Verify(svid.Chain, both); err != nil {
			t.Errorf("%s does not verify against {old, new}: %v", name, err)
		}
	}
	if _, _, err := x509svid.Verify(newSVID.Chain, x509bundle.FromX509Authorities(testTD, []*x509.Certificate{root1})); err == nil {
		t.Error("new-root SVID verifies against the old root alone")
	}
	// Step 3: the signing root cannot go; the old one can.
	if err := a.RemoveRoot(ctx, root2); err == nil {
		t.Fatal("RemoveRoot of the signing root succeeded")
	}
	if err := a.RemoveRoot(ctx, root1); err != nil {
		t.Fatal(err)
	}
	if b := a.Bundle(); len(b) != 1 || !b[0].Equal(root2) {
		t.Fatal("bundle after rotation is not {new}")
	}
	// Every step was saved: a restart resumes with the new root only.
	b, err := Open(ctx, testTD, NewDirStore(dir), WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if bb := b.Bundle(); len(bb) != 1 || !bb[0].Equal(root2) || !b.SigningCertificate().Equal(root2) {
		t.Fatal("restart after rotation did not load the new root")
	}
}

func mustCerts(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	c, err := ParseCertificatesPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentitySPIFFEID(t *testing.T) {
	id, err := paymentID.SPIFFEID(testTD)
	if err != nil || id != spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/payment") {
		t.Fatalf("SPIFFEID = %v, %v", id, err)
	}
	for _, bad := range []Identity{{}, {Namespace: "shop"}, {Namespace: "sh op", ServiceAccount: "x"}, {Namespace: "..", ServiceAccount: "x"}} {
		if _, err := bad.SPIFFEID(testTD); err == nil {
			t.Errorf("SPIFFEID(%+v) succeeded", bad)
		}
	}
}
