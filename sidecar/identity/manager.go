package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Defaults of the renewal loop.
const (
	DefaultRenewRatio     = 0.5
	DefaultRenewJitter    = 0.05
	DefaultBackoffInitial = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
)

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger (slog.Default() otherwise).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithRenewAt sets when a certificate is renewed: at ratio of its remaining
// lifetime (counted from when it was installed), plus or minus jitter of
// that lifetime, chosen at random for each certificate.
func WithRenewAt(ratio, jitter float64) Option {
	return func(m *Manager) { m.ratio, m.jitter = ratio, jitter }
}

// WithBackoff sets the retry delays after a failed renewal: initial,
// doubling up to max, each with ±20% jitter.
func WithBackoff(initial, max time.Duration) Option {
	return func(m *Manager) { m.boInitial, m.boMax = initial, max }
}

// WithValidity sets the lifetime asked of the CA (0: the CA's default).
func WithValidity(d time.Duration) Option { return func(m *Manager) { m.validity = d } }

// WithRenewalHook sets a function Run calls after every renewal attempt
// with its error (nil on success), for metrics.
func WithRenewalHook(f func(error)) Option { return func(m *Manager) { m.onRenew = f } }

// Manager holds one workload's identity: its private keys (in memory only;
// nothing here writes or returns a key except inside the SVID handed to the
// TLS stack), its current X.509 SVID and its trust bundle. It is an
// x509svid.Source and an x509bundle.Source, so TLS configs built on it read
// the current certificate at every handshake. It is safe for concurrent
// use.
type Manager struct {
	id        spiffeid.ID
	log       *slog.Logger
	ratio     float64
	jitter    float64
	boInitial time.Duration
	boMax     time.Duration
	validity  time.Duration
	onRenew   func(error)

	failures atomic.Uint64 // renewal failures since start

	mu      sync.RWMutex
	current *ecdsa.PrivateKey // the key of svid
	pending *ecdsa.PrivateKey // the key of the outstanding CSR
	svid    *x509svid.SVID
	bundle  *x509bundle.Bundle
	renewAt time.Time
	changed chan struct{} // closed and replaced on every change
}

var (
	_ x509svid.Source   = (*Manager)(nil)
	_ x509bundle.Source = (*Manager)(nil)
)

// New returns a Manager for SPIFFE ID id and makes its first key (ECDSA
// P-256). It has no certificate until one is installed by Run (from the CA)
// or by SetX509SVID / Apply (from an SDS push).
func New(id spiffeid.ID, opts ...Option) (*Manager, error) {
	if id.IsZero() {
		return nil, errors.New("identity: SPIFFE ID is required")
	}
	m := &Manager{
		id:        id,
		log:       slog.Default(),
		ratio:     DefaultRenewRatio,
		jitter:    DefaultRenewJitter,
		boInitial: DefaultBackoffInitial,
		boMax:     DefaultBackoffMax,
		changed:   make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	if m.ratio <= 0 || m.ratio >= 1 || m.jitter < 0 || m.jitter >= min(m.ratio, 1-m.ratio) {
		return nil, fmt.Errorf("identity: renew ratio %v ± %v must stay inside (0, 1)", m.ratio, m.jitter)
	}
	if m.boInitial <= 0 || m.boMax < m.boInitial {
		return nil, fmt.Errorf("identity: backoff %s..%s is not valid", m.boInitial, m.boMax)
	}
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	m.pending = k
	return m, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generating key: %w", err)
	}
	return k, nil
}

// ID returns the workload's SPIFFE ID.
func (m *Manager) ID() spiffeid.ID { return m.id }

// CSR returns a PEM CSR for the workload's SPIFFE ID (its only SAN). It is
// signed with the pending key, made on the first call after a certificate
// was installed and reused until a certificate for it arrives, so each
// renewal rotates the key and retries do not.
func (m *Manager) CSR() ([]byte, error) {
	m.mu.Lock()
	if m.pending == nil {
		k, err := newKey()
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		m.pending = k
	}
	key := m.pending
	m.mu.Unlock()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{m.id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("identity: creating CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// GetX509SVID implements x509svid.Source. It fails before the first
// certificate and after the current one expired.
func (m *Manager) GetX509SVID() (*x509svid.SVID, error) {
	m.mu.RLock()
	s := m.svid
	m.mu.RUnlock()
	if s == nil {
		return nil, fmt.Errorf("identity: no certificate for %s yet", m.id)
	}
	if leaf := s.Certificates[0]; time.Now().After(leaf.NotAfter) {
		return nil, fmt.Errorf("identity: certificate for %s expired at %s and was not renewed", m.id, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source. Only the
// workload's own trust domain has a bundle.
func (m *Manager) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	m.mu.RLock()
	b := m.bundle
	m.mu.RUnlock()
	if td != m.id.TrustDomain() {
		return nil, fmt.Errorf("identity: no trust bundle for trust domain %q (only %q is trusted)", td.Name(), m.id.TrustDomain().Name())
	}
	if b == nil {
		return nil, fmt.Errorf("identity: no trust bundle for %q yet", td.Name())
	}
	return b, nil
}

// SetBundle replaces the trust bundle with roots (an SDS push, or a CA
// response). A bundle that no longer verifies the current certificate is
// installed all the same, and logged.
func (m *Manager) SetBundle(roots []*x509.Certificate) error {
	if len(roots) == 0 {
		return errors.New("identity: empty trust bundle")
	}
	b := x509bundle.FromX509Authorities(m.id.TrustDomain(), roots)
	m.mu.Lock()
	m.bundle = b
	if m.svid != nil {
		if _, _, err := x509svid.Verify(m.svid.Certificates, b); err != nil {
			m.log.Warn("identity: the new trust bundle does not verify the current certificate", "spiffe_id", m.id.String(), "error", err)
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info("identity: trust bundle installed", "spiffe_id", m.id.String(), "roots", len(roots))
	return nil
}

// SetX509SVID installs a certificate chain (leaf first, then
// intermediates), as pushed over SDS or returned by the CA. It is refused
// unless the leaf's public key is one of this workload's keys, the chain is
// an X.509 SVID for exactly this workload's SPIFFE ID, and it verifies
// against the current trust bundle now.
func (m *Manager) SetX509SVID(chain []*x509.Certificate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setSVIDLocked(chain, m.bundle)
}

// Apply installs a CA response: the bundle, then the chain verified against
// it, atomically (neither is installed if the chain is refused).
func (m *Manager) Apply(chain, roots []*x509.Certificate) error {
	if len(roots) == 0 {
		return errors.New("identity: empty trust bundle")
	}
	b := x509bundle.FromX509Authorities(m.id.TrustDomain(), roots)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.setSVIDLocked(chain, b); err != nil {
		return err
	}
	m.bundle = b
	return nil
}

func (m *Manager) setSVIDLocked(chain []*x509.Certificate, bundle *x509bundle.Bundle) error {
	if len(chain) == 0 {
		return errors.New("identity: empty certificate chain")
	}
	if bundle == nil {
		return errors.New("identity: no trust bundle to verify the certificate with")
	}
	leaf := chain[0]
	var key *ecdsa.PrivateKey
	for _, k := range []*ecdsa.PrivateKey{m.pending, m.current} {
		if k != nil && k.PublicKey.Equal(leaf.PublicKey) {
			key = k
			break
		}
	}
	if key == nil {
		return fmt.Errorf("identity: certificate serial %s: its public key is not this workload's key", serial(leaf.SerialNumber))
	}
	id, _, err := x509svid.Verify(chain, bundle)
	if err != nil {
		return fmt.Errorf("identity: certificate serial %s: %w", serial(leaf.SerialNumber), err)
	}
	if id != m.id {
		return fmt.Errorf("identity: certificate serial %s is for %s, not %s", serial(leaf.SerialNumber), id, m.id)
	}
	if cur := m.svid; cur != nil {
		// The control plane pushes over SDS what the CA just returned, and
		// may push an older chain while a renewal is in flight: neither
		// replaces the installed certificate (nor moves its renewal point).
		if old := cur.Certificates[0]; bytes.Equal(old.Raw, leaf.Raw) || leaf.NotAfter.Before(old.NotAfter) {
			return nil
		}
	}
	m.svid = &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
	if key == m.pending {
		m.current, m.pending = key, nil
	}
	now := time.Now()
	left := leaf.NotAfter.Sub(now)
	f := m.ratio + m.jitter*(2*mrand.Float64()-1) //nolint:gosec // jitter, not a secret
	m.renewAt = now.Add(time.Duration(float64(left) * f))
	m.notifyLocked()
	m.log.Info("identity: certificate installed", "spiffe_id", id.String(), "serial", serial(leaf.SerialNumber),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "renew_at", m.renewAt.UTC().Format(time.RFC3339Nano))
	return nil
}

func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Changed returns a channel that is closed at the next change of the
// certificate or the bundle.
func (m *Manager) Changed() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

// WaitReady blocks until the Manager has a certificate and a bundle, or ctx
// ends.
func (m *Manager) WaitReady(ctx context.Context) error {
	for {
		m.mu.RLock()
		ready, ch := m.svid != nil && m.bundle != nil, m.changed
		m.mu.RUnlock()
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("identity: waiting for the first certificate of %s: %w", m.id, ctx.Err())
		case <-ch:
		}
	}
}

// Status describes the current certificate, never the key: for weftctl
// proxy-status, metrics and logs.
type Status struct {
	ID        spiffeid.ID
	Serial    string // hex; empty before the first certificate
	NotBefore time.Time
	NotAfter  time.Time
	RenewAt   time.Time
	Roots     int    // roots in the trust bundle
	Failures  uint64 // failed renewals since start
}

// Status returns the current certificate's status.
func (m *Manager) Status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := Status{ID: m.id, RenewAt: m.renewAt, Failures: m.failures.Load()}
	if m.svid != nil {
		leaf := m.svid.Certificates[0]
		st.Serial, st.NotBefore, st.NotAfter = serial(leaf.SerialNumber), leaf.NotBefore, leaf.NotAfter
	}
	if m.bundle != nil {
		st.Roots = len(m.bundle.X509Authorities())
	}
	return st
}

func serial(n *big.Int) string { return n.Text(16) }

// ParseCertificatesPEM parses concatenated PEM CERTIFICATE blocks (an SDS
// Secret's certificate chain or trusted CA, a CA response).
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("identity: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return nil, errors.New("identity: trailing data after the PEM certificates")
	}
	if len(certs) == 0 {
		return nil, errors.New("identity: no PEM certificate")
	}
	return certs, nil
}
