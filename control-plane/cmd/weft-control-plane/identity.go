package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
)

// selfIdentity is the control plane's own SVID
// (spiffe://<td>/ns/weft-system/sa/weft-control-plane), issued by its CA
// to itself with a fresh key each time and renewed at half its lifetime.
// The xDS port's TLS config reads it in GetCertificate at every handshake,
// so a renewal (or a root rotation) needs no restart.
type selfIdentity struct {
	ca  *ca.Authority
	log *slog.Logger
	cur atomic.Pointer[tls.Certificate]
	// kick asks Run to renew now (after the signer rotated).
	kick chan struct{}
}

func newSelfIdentity(a *ca.Authority, log *slog.Logger) (*selfIdentity, error) {
	s := &selfIdentity{ca: a, log: log, kick: make(chan struct{}, 1)}
	if err := s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *selfIdentity) who() ca.Identity {
	return ca.Identity{Namespace: mesh.ControlPlaneNamespace, ServiceAccount: mesh.ControlPlaneServiceAccount, Workload: mesh.ControlPlaneServiceAccount}
}

// renew issues a new certificate with a new key.
func (s *selfIdentity) renew() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("control plane identity: %w", err)
	}
	id, err := url.Parse(mesh.SPIFFEID(s.ca.TrustDomain().Name(), mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount))
	if err != nil {
		return fmt.Errorf("control plane identity: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id}}, key)
	if err != nil {
		return fmt.Errorf("control plane identity: csr: %w", err)
	}
	issued, err := s.ca.SignCSR(csr, s.who(), 0)
	if err != nil {
		return fmt.Errorf("control plane identity: %w", err)
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: issued.Chain[0]}
	for _, ic := range issued.Chain {
		c.Certificate = append(c.Certificate, ic.Raw)
	}
	s.cur.Store(c)
	s.log.Info("control plane certificate issued", "spiffe_id", id.String(), "serial", c.Leaf.SerialNumber.Text(16),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// RenewNow asks Run to renew at once (e.g. after the CA's signer rotated).
func (s *selfIdentity) RenewNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run renews the certificate at half of its remaining lifetime (retrying
// every second on failure) until ctx is done.
func (s *selfIdentity) Run(ctx context.Context) error {
	for {
		leaf := s.cur.Load().Leaf
		wait := time.Until(leaf.NotAfter) / 2
		t := time.NewTimer(max(wait, 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.kick:
			t.Stop()
		case <-t.C:
		}
		for ctx.Err() == nil {
			err := s.renew()
			if err == nil {
				break
			}
			s.log.Error("control plane certificate renewal failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *selfIdentity) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	if c == nil {
		return nil, errors.New("control plane identity: no certificate")
	}
	return c, nil
}

// tlsConfig is the xDS port's server config: TLS 1.3, ALPN h2, the
// control plane's SVID; sidecars authenticate with bearer tokens, not
// client certificates.
func (s *selfIdentity) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{"h2"},
		GetCertificate: s.GetCertificate,
	}
}
