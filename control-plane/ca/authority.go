package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
)

// DefaultBackdate is how far before the signing time a certificate's
// NotBefore is set, to absorb clock skew between the CA and its peers.
const DefaultBackdate = time.Minute

// Observer receives the CA's events, for metrics. Its methods must not
// block.
type Observer interface {
	// CertificateIssued is called for every certificate signed.
	CertificateIssued(id spiffeid.ID, notAfter time.Time)
	// RequestRefused is called for every refused request, with the reason
	// class: "unauthenticated", "identity_mismatch" or "invalid_csr".
	RequestRefused(reason string)
}

// Option configures an Authority.
type Option func(*Authority)

// WithLifetime sets the lifetime of certificates issued when the request
// asks for none (mesh.DefaultCertLifetime by default). A few seconds is
// allowed, for rotation tests.
func WithLifetime(d time.Duration) Option { return func(a *Authority) { a.lifetime = d } }

// WithMaxLifetime caps the lifetime a request may ask for (by default the
// default lifetime); longer requests are shortened to it.
func WithMaxLifetime(d time.Duration) Option { return func(a *Authority) { a.maxLifetime = d } }

// WithBackdate sets how far NotBefore is backdated (DefaultBackdate).
func WithBackdate(d time.Duration) Option { return func(a *Authority) { a.backdate = d } }

// WithLogger sets the logger (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option { return func(a *Authority) { a.log = l } }

// WithClock sets the clock (time.Now otherwise); tests use it to issue
// certificates that are already expired.
func WithClock(now func() time.Time) Option { return func(a *Authority) { a.now = now } }

// WithObserver sets the metrics observer.
func WithObserver(o Observer) Option { return func(a *Authority) { a.observer = o } }

// WithStore makes the Authority save its material to s after every
// root-rotation step. Open sets it.
func WithStore(s Store) Option { return func(a *Authority) { a.store = s } }

// WithRootLifetime sets the lifetime of a root Open generates
// (DefaultRootLifetime).
func WithRootLifetime(d time.Duration) Option { return func(a *Authority) { a.rootLifetime = d } }

// Authority is the mesh CA: it signs X.509 SVIDs with its signing
// certificate and publishes the trust bundle. It is safe for concurrent use.
type Authority struct {
	td           spiffeid.TrustDomain
	lifetime     time.Duration
	maxLifetime  time.Duration
	backdate     time.Duration
	rootLifetime time.Duration
	log          *slog.Logger
	now          func() time.Time
	observer     Observer
	store        Store

	// mu guards signer, roots and keyPEM; rotation steps take it for
	// writing, signing for reading.
	mu     sync.RWMutex
	signer *signingCA
	roots  []*x509.Certificate
	keyPEM []byte // the signer's key as supplied, for the store
	chain  []byte // the signer's chain as supplied, for the store
}

// New returns an Authority for trust domain td that signs with m (a root,
// or an intermediate with its chain and the roots it chains to, e.g. from
// cert-manager).
func New(td spiffeid.TrustDomain, m Material, opts ...Option) (*Authority, error) {
	if td.IsZero() {
		return nil, errors.New("ca: trust domain is required")
	}
	a := &Authority{
		td:       td,
		lifetime: mesh.DefaultCertLifetime,
		backdate: DefaultBackdate,
		log:      slog.Default(),
		now:      time.Now,
	}
	for _, o := range opts {
		o(a)
	}
	if a.lifetime <= 0 {
		return nil, fmt.Errorf("ca: certificate lifetime %s must be positive", a.lifetime)
	}
	if a.maxLifetime < a.lifetime {
		a.maxLifetime = a.lifetime
	}
	s, roots, err := parseMaterial(m, a.now())
	if err != nil {
		return nil, err
	}
	a.signer, a.roots, a.keyPEM, a.chain = s, roots, m.KeyPEM, m.CertChainPEM
	return a, nil
}

// Open returns the Authority whose material is in store, generating a new
// self-signed root and saving it there on first start. The Authority keeps
// the store and saves every root-rotation step to it.
func Open(ctx context.Context, td spiffeid.TrustDomain, store Store, opts ...Option) (*Authority, error) {
	if td.IsZero() {
		return nil, errors.New("ca: trust domain is required")
	}
	probe := &Authority{now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(probe)
	}
	m, err := store.Load(ctx)
	if errors.Is(err, ErrNotFound) {
		if m, err = GenerateRoot(td, probe.rootLifetime, probe.now()); err != nil {
			return nil, err
		}
		if err = store.Save(ctx, m); err != nil {
			return nil, err
		}
		probe.log.Info("ca: generated a new root", "trust_domain", td.Name())
	} else if err != nil {
		return nil, err
	}
	return New(td, m, append(slices.Clone(opts), WithStore(store))...)
}

// TrustDomain returns the trust domain the Authority issues in.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Bundle returns every root the mesh trusts now (several during a root
// rotation). The slice is the caller's.
func (a *Authority) Bundle() []*x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.roots)
}

// SigningCertificate returns the certificate that signs SVIDs now.
func (a *Authority) SigningCertificate() *x509.Certificate {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.signer.cert
}

// Issued is a signed SVID.
type Issued struct {
	// Chain is the leaf first, then each intermediate up to (not
	// including) the root.
	Chain []*x509.Certificate
	// Bundle is every trusted root at signing time.
	Bundle []*x509.Certificate
}

// SignCSR checks a DER CSR with ValidateCSR, checks that it asks for the
// SPIFFE ID of who (the identity its credential proved), and signs it for
// ttl (the default lifetime when 0, capped by the maximum and by the
// signing certificate's expiry). Refusals wrap ErrInvalidCSR or
// ErrIdentityMismatch.
func (a *Authority) SignCSR(csrDER []byte, who Identity, ttl time.Duration) (*Issued, error) {
	csr, got, err := ValidateCSR(a.td, csrDER)
	if err != nil {
		return nil, err
	}
	want, err := who.SPIFFEID(a.td)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentityMismatch, err)
	}
	if got != want {
		return nil, fmt.Errorf("%w: csr asks for %s, credential proves %s", ErrIdentityMismatch, got, want)
	}
	return a.sign(csr, want, ttl)
}

func (a *Authority) sign(csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration) (*Issued, error) {
	if ttl <= 0 {
		ttl = a.lifetime
	}
	ttl = min(ttl, a.maxLifetime)
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	s, roots := a.signer, slices.Clone(a.roots)
	a.mu.RUnlock()

	now := a.now()
	notAfter := now.Add(ttl)
	notBefore := now.Add(-a.backdate)
	for _, c := range append([]*x509.Certificate{s.cert}, s.chain...) {
		if notAfter.After(c.NotAfter) {
			notAfter = c.NotAfter
		}
		if notBefore.Before(c.NotBefore) {
			notBefore = c.NotBefore
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, csr.PublicKey, s.key)
	if err != nil {
		return nil, fmt.Errorf("ca: signing %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: signing %s: %w", id, err)
	}
	chain := []*x509.Certificate{leaf}
	if !isSelfSigned(s.cert) {
		chain = append(chain, s.cert)
	}
	chain = append(chain, s.chain...)
	if a.observer != nil {
		a.observer.CertificateIssued(id, notAfter)
	}
	return &Issued{Chain: chain, Bundle: roots}, nil
}

// Root rotation. See the package documentation for the procedure; each step
// is saved to the store when the Authority has one.

// AddRoot adds root to the trust bundle (step 1 of a rotation). Signing
// does not change. Adding a root already present does nothing.
func (a *Authority) AddRoot(ctx context.Context, root *x509.Certificate) error {
	if !root.IsCA || !isSelfSigned(root) {
		return fmt.Errorf("ca: %q is not a self-signed CA certificate", root.Subject)
	}
	if a.now().After(root.NotAfter) {
		return fmt.Errorf("ca: root %q expired at %s", root.Subject, root.NotAfter.Format(time.RFC3339))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.ContainsFunc(a.roots, root.Equal) {
		return nil
	}
	roots := append(slices.Clone(a.roots), root)
	if err := a.saveLocked(ctx, a.chain, a.keyPEM, roots); err != nil {
		return err
	}
	a.roots = roots
	a.log.Info("ca: root added to the trust bundle", "root", root.Subject.String(), "roots", len(roots))
	return nil
}

// RotateSigner makes m's certificate and key the signer (step 2). m's
// chain must lead to a root that is already in the trust bundle (AddRoot
// first, and wait until every sidecar has the new bundle); m.BundlePEM is
// ignored. The old root stays in the bundle.
func (a *Authority) RotateSigner(ctx context.Context, m Material) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	m.BundlePEM = EncodeCertificatesPEM(a.roots)
	s, _, err := parseMaterial(m, a.now())
	if err != nil {
		return fmt.Errorf("ca: rotate signer (is its root in the bundle yet? AddRoot first): %w", err)
	}
	if err := a.saveLocked(ctx, m.CertChainPEM, m.KeyPEM, a.roots); err != nil {
		return err
	}
	a.signer, a.keyPEM, a.chain = s, m.KeyPEM, m.CertChainPEM
	a.log.Info("ca: signing certificate rotated", "signer", s.cert.Subject.String(), "root", s.root.Subject.String())
	return nil
}

// RemoveRoot drops root from the trust bundle (step 3). It refuses to drop
// the root the current signer chains to, or the last root.
func (a *Authority) RemoveRoot(ctx context.Context, root *x509.Certificate) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.signer.root.Equal(root) {
		return fmt.Errorf("ca: root %q still signs: rotate the signer first", root.Subject)
	}
	i := slices.IndexFunc(a.roots, root.Equal)
	if i < 0 {
		return fmt.Errorf("ca: root %q is not in the trust bundle", root.Subject)
	}
	roots := slices.Delete(slices.Clone(a.roots), i, i+1)
	if err := a.saveLocked(ctx, a.chain, a.keyPEM, roots); err != nil {
		return err
	}
	a.roots = roots
	a.log.Info("ca: root removed from the trust bundle", "root", root.Subject.String(), "roots", len(roots))
	return nil
}

func (a *Authority) saveLocked(ctx context.Context, chain, key []byte, roots []*x509.Certificate) error {
	if a.store == nil {
		return nil
	}
	m := Material{CertChainPEM: chain, KeyPEM: key, BundlePEM: EncodeCertificatesPEM(roots)}
	if err := a.store.Save(ctx, m); err != nil {
		return fmt.Errorf("ca: saving material: %w", err)
	}
	return nil
}
