// Package testca is a minimal mesh CA for the sidecar's tests: it signs
// like control-plane/ca (ECDSA P-256 root, one URI SAN, serverAuth and
// clientAuth), serves weft.ca.v1 with one bearer token, and can be taken
// down. The sidecar does not import the control plane; this is its stand-in.
package testca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
)

// CA is a test certificate authority.
type CA struct {
	cav1grpc.UnimplementedCertificateServiceServer

	Root     *x509.Certificate
	key      *ecdsa.PrivateKey
	lifetime time.Duration
	// Token is the only credential CreateCertificate accepts.
	Token string
	// Down makes Sign fail (the control plane is down for the CA).
	Down atomic.Bool

	mu    sync.Mutex
	calls []time.Time // every Sign call, up or down
	roots []*x509.Certificate
}

var serial atomic.Int64

// New returns a CA whose certificates live for lifetime.
func New(t testing.TB, name string, lifetime time.Duration) *CA {
	t.Helper()
	key := Key(t)
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
	return &CA{Root: root, key: key, lifetime: lifetime, roots: []*x509.Certificate{root}, Token: "wjt_test"}
}

// Key makes an ECDSA P-256 key.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Issue signs pub for the SPIFFE ID id, valid from notBefore to notAfter.
func (c *CA) Issue(pub crypto.PublicKey, id string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	u, err := url.Parse(id)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano() + serial.Add(1)),
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Root, pub, c.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// SVID is a static SVID for id with a fresh key, valid for the window.
func (c *CA) SVID(t testing.TB, id string, notBefore, notAfter time.Time) *x509svid.SVID {
	t.Helper()
	k := Key(t)
	leaf, err := c.Issue(k.Public(), id, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := x509svid.IDFromCert(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{leaf}, PrivateKey: k}
}

// SetRoots sets the bundle the CA hands out.
func (c *CA) SetRoots(roots ...*x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.roots = roots
}

// Calls counts Sign calls, up or down.
func (c *CA) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// CallTimes returns when each Sign call came, up or down.
func (c *CA) CallTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.calls...)
}

// Clone is a CA that signs with the same root and key and hands out the
// same bundle, with its own lifetime, counters and Down switch (up).
func (c *CA) Clone(lifetime time.Duration) *CA {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &CA{Root: c.Root, key: c.key, lifetime: lifetime, Token: c.Token, roots: append([]*x509.Certificate(nil), c.roots...)}
}

// ErrDown is Sign's error while Down.
var ErrDown = errors.New("testca: the CA is down")

// Sign signs the CSR's only URI SAN, like the mesh CA.
func (c *CA) Sign(_ context.Context, csrPEM []byte, validity time.Duration) (chain, roots []*x509.Certificate, err error) {
	c.mu.Lock()
	c.calls = append(c.calls, time.Now())
	roots = c.roots
	c.mu.Unlock()
	if c.Down.Load() {
		return nil, nil, ErrDown
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, nil, errors.New("testca: no PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if err := csr.CheckSignature(); err != nil || len(csr.URIs) != 1 {
		return nil, nil, errors.New("testca: bad CSR")
	}
	if validity == 0 {
		validity = c.lifetime
	}
	now := time.Now()
	leaf, err := c.Issue(csr.PublicKey, csr.URIs[0].String(), now.Add(-time.Minute), now.Add(validity))
	if err != nil {
		return nil, nil, err
	}
	return []*x509.Certificate{leaf}, roots, nil
}

// CreateCertificate implements weft.ca.v1 with Token as the only credential.
func (c *CA) CreateCertificate(ctx context.Context, req *cav1.CreateCertificateRequest) (*cav1.CreateCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(cav1.MetadataAuthorization); len(v) != 1 || v[0] != cav1.BearerPrefix+c.Token {
		return nil, status.Error(codes.Unauthenticated, "testca: bad token")
	}
	chain, roots, err := c.Sign(ctx, []byte(req.GetCsrPem()), time.Duration(req.GetValiditySeconds())*time.Second)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	resp := &cav1.CreateCertificateResponse{}
	for _, x := range chain {
		resp.CertChainPem = append(resp.CertChainPem, string(PEM(x)))
	}
	for _, x := range roots {
		resp.TrustBundlePem = append(resp.TrustBundlePem, string(PEM(x)))
	}
	return resp, nil
}

// PEM encodes certificates.
func PEM(cs ...*x509.Certificate) []byte {
	var out []byte
	for _, x := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	return out
}

// ServerTLS is the control plane's TLS config: its own SVID id, issued by
// c, and TLS 1.3 (clients are not asked for a certificate; they send a
// bearer token).
func (c *CA) ServerTLS(t testing.TB, id spiffeid.ID) *tls.Config {
	t.Helper()
	svid := c.SVID(t, id.String(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	cfg := tlsconfig.TLSServerConfig(svid)
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}
