package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/identity"
)

// secureChannel is the xDS/CA channel's security: TLS 1.3 to the control
// plane, verified against the bundle the sidecar was started with and
// authorized as exactly the control plane's SPIFFE ID, and the bearer
// credential on every RPC.
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

// dialOptions are the gRPC options of the ADS and the CA connection; the
// ADS one (bearer) sends the credential on every call, the CA client
// (identity.GRPCCA) adds it itself.
func (s *secureChannel) dialOptions(log *slog.Logger, bearerOnEveryCall bool) []grpc.DialOption {
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
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		// gRPC's default reconnect backoff reaches 120 s.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if bearerOnEveryCall {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{s.cred}))
	}
	return opts
}

// bearer sends the credential, read at each call (a rotated token file is
// picked up), as `authorization: Bearer <token>`.
type bearer struct{ cred identity.Credential }

var _ credentials.PerRPCCredentials = bearer{}

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := b.cred(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{cav1.MetadataAuthorization: cav1.BearerPrefix + tok}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
