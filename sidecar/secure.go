package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/identity"
	"github.com/weftmesh/weft/sidecar/internal/cpconn"
)

// secureChannel is the xDS/CA channel's security: TLS 1.3 to the control
// plane, verified against the bundle the sidecar was started with and
// authorized as exactly the control plane's SPIFFE ID, and the bearer
// credential on every call.
type secureChannel struct {
	td     spiffeid.TrustDomain
	bundle *x509bundle.Bundle
	cred   identity.Credential
}

func newSecureChannel(cfg Config) (*secureChannel, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("sidecar: trust domain %q: %w", cfg.TrustDomain, err)
	}
	b, err := os.ReadFile(cfg.CABundle)
	if err != nil {
		return nil, fmt.Errorf("sidecar: ca bundle: %w", err)
	}
	roots, err := identity.ParseCertificatesPEM(b)
	if err != nil {
		return nil, fmt.Errorf("sidecar: ca bundle %s: %w", cfg.CABundle, err)
	}
	if cfg.TokenFile == "" {
		return nil, fmt.Errorf("sidecar: a token file is required with a ca bundle")
	}
	return &secureChannel{td: td, bundle: x509bundle.FromX509Authorities(td, roots), cred: identity.TokenFile(cfg.TokenFile)}, nil
}

// controlPlaneID is the only identity the sidecar accepts on 15012.
func (s *secureChannel) controlPlaneID() spiffeid.ID {
	return spiffeid.RequireFromString(mesh.SPIFFEID(s.td.Name(), mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount))
}

// tlsConfig is the TLS of the xDS and CA connection (cpconn.NewTransport
// adds ALPN h2): TLS 1.3, the control plane's certificate verified against
// the bundle and authorized as exactly controlPlaneID, refusals logged.
func (s *secureChannel) tlsConfig(log *slog.Logger) *tls.Config {
	cpID := s.controlPlaneID()
	cfg := tlsconfig.TLSClientConfig(s.bundle, tlsconfig.AuthorizeID(cpID))
	cfg.MinVersion = tls.VersionTLS13
	verify := cfg.VerifyPeerCertificate
	// No ClientSessionCache is set, so sessions are never resumed and this
	// check runs on every handshake.
	cfg.VerifyPeerCertificate = func( //nolint:gosec // G123: no session resumption (see above)
		raw [][]byte, chains [][]*x509.Certificate,
	) error {
		if err := verify(raw, chains); err != nil {
			log.Warn("refused the control plane's certificate", "want", cpID.String(), "reason", err.Error())
			return err
		}
		return nil
	}
	return cfg
}

// clients are the HTTP/2 clients of the ADS stream and of the CA on one
// transport (one connection): the ADS one sends the credential with its
// request (cpconn.Bearer), the CA client (identity.GRPCCA) adds it itself.
// close closes the transport's idle connections.
func (s *secureChannel) clients(log *slog.Logger) (ads, ca *http.Client, closeIdle func()) {
	tr := cpconn.NewTransport(s.tlsConfig(log))
	return &http.Client{Transport: cpconn.Bearer{Next: tr, Token: s.cred}}, &http.Client{Transport: tr}, tr.CloseIdleConnections
}
