package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/control-plane/xds"
)

// nextDir is the subdirectory of --ca-dir holding the root a rotation
// has added to the bundle but not yet activated.
const nextDir = "next"

// openAuthority opens the CA from --ca-dir (generating a root on first
// start) or from supplied material.
func openAuthority(ctx context.Context, cfg Config, log *slog.Logger, obs ca.Observer) (*ca.Authority, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.Mesh.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: ca: trust domain: %w", err)
	}
	opts := []ca.Option{ca.WithLifetime(cfg.CA.CertLifetime), ca.WithLogger(log), ca.WithObserver(obs)}
	if cfg.CA.Dir != "" {
		a, err := ca.Open(ctx, td, ca.NewDirStore(cfg.CA.Dir), opts...)
		if err != nil {
			return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
		}
		return a, nil
	}
	m, err := ca.LoadMaterialFiles(cfg.CA.Cert, cfg.CA.Key, cfg.CA.Roots)
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
	}
	if cfg.CA.Chain != "" {
		chain, err := os.ReadFile(cfg.CA.Chain)
		if err != nil {
			return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
		}
		m.CertChainPEM = append(append(m.CertChainPEM, '\n'), chain...)
	}
	a, err := ca.New(td, m, opts...)
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
	}
	return a, nil
}

// nodeAuth turns the CA's Authenticator into the xds server's: the node a
// credential proves is mesh.NodeID(workload, namespace).
type nodeAuth struct{ auth ca.Authenticator }

var _ xds.Authenticator = nodeAuth{}

func (n nodeAuth) AuthenticateNode(ctx context.Context) (string, error) {
	id, err := ca.AuthenticateContext(ctx, n.auth)
	if err != nil {
		return "", err
	}
	return mesh.NodeID(id.Workload, id.Namespace), nil
}

// caMetrics counts signings by result (ca.Observer).
type caMetrics struct {
	mu     sync.Mutex
	counts map[string]uint64
}

var _ ca.Observer = (*caMetrics)(nil)

func newCAMetrics() *caMetrics { return &caMetrics{counts: map[string]uint64{"issued": 0}} }

func (m *caMetrics) CertificateIssued(spiffeid.ID, time.Time) { m.add("issued") }
func (m *caMetrics) RequestRefused(reason string)             { m.add(reason) }

func (m *caMetrics) add(result string) {
	m.mu.Lock()
	m.counts[result]++
	m.mu.Unlock()
}

// write renders weft_ca_signings_total{result}, weft_ca_certificates (the
// proxies holding an unexpired certificate) and weft_ca_trust_bundle_roots.
func (m *caMetrics) write(w io.Writer, certs, roots int) {
	m.mu.Lock()
	results := make([]string, 0, len(m.counts))
	for r := range m.counts {
		results = append(results, r)
	}
	sort.Strings(results)
	_, _ = fmt.Fprintf(w, "# HELP weft_ca_signings_total Certificate requests by result (issued, or the refusal reason).\n# TYPE weft_ca_signings_total counter\n")
	for _, r := range results {
		_, _ = fmt.Fprintf(w, "weft_ca_signings_total{result=%q} %d\n", r, m.counts[r])
	}
	m.mu.Unlock()
	_, _ = fmt.Fprintf(w, "# HELP weft_ca_certificates Proxies holding an unexpired certificate issued by this control plane.\n# TYPE weft_ca_certificates gauge\nweft_ca_certificates %d\n", certs)
	_, _ = fmt.Fprintf(w, "# HELP weft_ca_trust_bundle_roots Roots in the trust bundle.\n# TYPE weft_ca_trust_bundle_roots gauge\nweft_ca_trust_bundle_roots %d\n", roots)
}

// rotator runs the root-rotation steps of control-plane/ca's doc on the
// CA of --ca-dir: add (a new root, generated into <ca-dir>/next, joins the
// bundle), activate (it signs; the control plane's own certificate is
// renewed at once), remove (every root but the signer's leaves the
// bundle). Each step pushes the bundle to every proxy. Steps are
// serialized and idempotent.
type rotator struct {
	dir  string // "" with supplied material: rotation is refused
	a    *ca.Authority
	x    *xds.Server
	self *selfIdentity
	log  *slog.Logger

	mu sync.Mutex // serializes steps
}

// RotationResult is the JSON answer of a rotation step.
type RotationResult struct {
	Step   string       `json:"step"`
	Signer RootStatus   `json:"signer"`
	Roots  []RootStatus `json:"roots"`
}

// RootStatus names a certificate of the CA.
type RootStatus struct {
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
}

// errRotation marks a refused step (HTTP 409).
var errRotation = errors.New("root rotation refused")

func (r *rotator) Rotate(ctx context.Context, step string, force bool) (any, error) {
	if r.dir == "" {
		return nil, fmt.Errorf("%w: the CA uses supplied material (--ca-cert); supply the new material and restart instead", errRotation)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := ca.NewDirStore(filepath.Join(r.dir, nextDir))
	switch step {
	case "add":
		m, err := next.Load(ctx)
		if errors.Is(err, ca.ErrNotFound) {
			if m, err = ca.GenerateRoot(r.a.TrustDomain(), ca.DefaultRootLifetime, time.Now()); err != nil {
				return nil, err
			}
			err = next.Save(ctx, m)
		}
		if err != nil {
			return nil, err
		}
		certs, err := ca.ParseCertificatesPEM(m.CertChainPEM)
		if err != nil {
			return nil, err
		}
		if err := r.a.AddRoot(ctx, certs[len(certs)-1]); err != nil {
			return nil, err
		}
	case "activate":
		m, err := next.Load(ctx)
		if errors.Is(err, ca.ErrNotFound) {
			return nil, fmt.Errorf("%w: no root waiting to be activated (run the add step first)", errRotation)
		}
		if err != nil {
			return nil, err
		}
		if err := r.a.RotateSigner(ctx, m); err != nil {
			return nil, fmt.Errorf("%w: %w", errRotation, err)
		}
		if err := os.RemoveAll(filepath.Join(r.dir, nextDir)); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		r.self.RenewNow()
	case "remove":
		if _, err := next.Load(ctx); err == nil {
			if !force {
				return nil, fmt.Errorf("%w: a new root was added but not activated: activate it first (force drops the new root and abandons the rotation)", errRotation)
			}
			if err := os.RemoveAll(filepath.Join(r.dir, nextDir)); err != nil {
				return nil, fmt.Errorf("ca: %w", err)
			}
		}
		signer := r.a.SigningCertificate()
		var old []*x509.Certificate
		for _, root := range r.a.Bundle() {
			if !root.Equal(signer) && signer.CheckSignatureFrom(root) != nil {
				old = append(old, root)
			}
		}
		if !force {
			if users := r.holders(old); len(users) > 0 {
				return nil, fmt.Errorf("%w: proxies still hold certificates signed by a root to remove: %s (wait for their renewal, or force)", errRotation, strings.Join(users, ", "))
			}
		}
		for _, root := range old {
			if err := r.a.RemoveRoot(ctx, root); err != nil {
				return nil, fmt.Errorf("%w: %w", errRotation, err)
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown step %q (add, activate, remove)", errRotation, step)
	}
	r.x.SetTrustBundle(r.a.Bundle())
	res := RotationResult{Step: step, Signer: rootStatus(r.a.SigningCertificate())}
	for _, c := range r.a.Bundle() {
		res.Roots = append(res.Roots, rootStatus(c))
	}
	r.log.Info("ca: root rotation step done", "step", step, "roots", len(res.Roots), "signer", res.Signer.Subject)
	return res, nil
}

// holders lists the proxies whose latest certificate chains to one of roots.
func (r *rotator) holders(roots []*x509.Certificate) []string {
	var out []string
	for node, leaf := range r.x.IssuedLeaves() {
		for _, root := range roots {
			if leaf.CheckSignatureFrom(root) == nil {
				out = append(out, node)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func rootStatus(c *x509.Certificate) RootStatus {
	return RootStatus{Subject: c.Subject.String(), Serial: c.SerialNumber.Text(16), NotAfter: c.NotAfter.UTC()}
}
