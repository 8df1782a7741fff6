package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// The mesh CA lives in the control-plane module, which the sidecar does not
// import; testCA is a minimal stand-in that signs like it (ECDSA P-256 root,
// one URI SAN, serverAuth+clientAuth), and can be taken down.

var (
	td         = spiffeid.RequireTrustDomainFromString("cluster.local")
	paymentID  = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/payment")
	cartID     = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/cart")
	frontendID = spiffeid.RequireFromString("spiffe://cluster.local/ns/shop/sa/frontend")
)

type testCA struct {
	root     *x509.Certificate
	key      *ecdsa.PrivateKey
	lifetime time.Duration

	down  atomic.Bool
	mu    sync.Mutex
	calls []time.Time // every Sign call, up or down
	roots []*x509.Certificate
}

func newTestCA(t testing.TB, name string, lifetime time.Duration) *testCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: root, key: key, lifetime: lifetime, roots: []*x509.Certificate{root}}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue signs pub for id, valid from notBefore to notAfter.
func (c *testCA) issue(t testing.TB, pub crypto.PublicKey, id string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	leaf, err := c.issueErr(pub, id, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func (c *testCA) issueErr(pub crypto.PublicKey, id string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	u, err := url.Parse(id)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, pub, c.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// svid is a static SVID for id with a fresh key, valid for the given window.
func (c *testCA) svid(t testing.TB, id string, notBefore, notAfter time.Time) *x509svid.SVID {
	t.Helper()
	k := mustKey(t)
	leaf := c.issue(t, k.Public(), id, notBefore, notAfter)
	sid, err := x509svid.IDFromCert(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{leaf}, PrivateKey: k}
}

// setRoots sets the bundle the CA hands out.
func (c *testCA) setRoots(roots ...*x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roots = roots
}

var errCADown = errors.New("test CA is down")

// Sign implements CA, like the mesh CA: the CSR's only URI SAN is signed.
func (c *testCA) Sign(_ context.Context, csrPEM []byte, validity time.Duration) (chain, roots []*x509.Certificate, err error) {
	c.mu.Lock()
	c.calls = append(c.calls, time.Now())
	roots = c.roots
	c.mu.Unlock()
	if c.down.Load() {
		return nil, nil, errCADown
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, nil, errors.New("no PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if err := csr.CheckSignature(); err != nil || len(csr.URIs) != 1 {
		return nil, nil, errors.New("bad CSR")
	}
	if validity == 0 {
		validity = c.lifetime
	}
	now := time.Now()
	leaf, err := c.issueErr(csr.PublicKey, csr.URIs[0].String(), now.Add(-time.Minute), now.Add(validity))
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{leaf}, roots, nil
}

func (c *testCA) callTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.calls...)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
