package ca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
)

// Server is the CA's gRPC service (weft.ca.v1.CertificateService). It
// authenticates the caller's credential (metadata `authorization: Bearer
// <token>`), signs the CSR only for the identity the credential proves, and
// logs every refusal with its reason. Register it on the control plane's
// gRPC server (TLS with a certificate from the same CA).
type Server struct {
	cav1grpc.UnimplementedCertificateServiceServer

	ca     *Authority
	auth   Authenticator
	log    *slog.Logger
	issued func(ctx context.Context, who Identity, issued *Issued)
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithIssuedHook calls f with every certificate the server signed, after
// signing and before the response is sent (the control plane hands the
// chain to the xds server, which pushes it over SDS). f must not block.
func WithIssuedHook(f func(ctx context.Context, who Identity, issued *Issued)) ServerOption {
	return func(s *Server) { s.issued = f }
}

var _ cav1grpc.CertificateServiceServer = (*Server)(nil)

// NewServer returns the service for ca, authenticating callers with auth.
// log may be nil (slog.Default()).
func NewServer(ca *Authority, auth Authenticator, log *slog.Logger, opts ...ServerOption) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{ca: ca, auth: auth, log: log}
	for _, o := range opts {
		o(s)
	}
	return s
}

// AuthenticateContext authenticates the `authorization: Bearer <token>`
// metadata of an incoming gRPC call (the xDS streams use it). Errors wrap
// ErrUnauthenticated and never contain the credential.
func AuthenticateContext(ctx context.Context, auth Authenticator) (Identity, error) {
	cred, err := bearerToken(ctx)
	if err != nil {
		return Identity{}, err
	}
	return auth.Authenticate(ctx, cred)
}

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { cav1grpc.RegisterCertificateServiceServer(g, s) }

// CreateCertificate implements cav1grpc.CertificateServiceServer.
func (s *Server) CreateCertificate(ctx context.Context, req *cav1.CreateCertificateRequest) (*cav1.CreateCertificateResponse, error) {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	cred, err := bearerToken(ctx)
	if err != nil {
		return nil, s.refuse(ctx, "unauthenticated", codes.Unauthenticated, err, "peer", addr)
	}
	who, err := s.auth.Authenticate(ctx, cred)
	if err != nil {
		return nil, s.refuse(ctx, "unauthenticated", codes.Unauthenticated, err, "peer", addr)
	}
	if req.GetValiditySeconds() < 0 {
		return nil, s.refuse(ctx, "invalid_csr", codes.InvalidArgument,
			fmt.Errorf("%w: validity_seconds %d is negative", ErrInvalidCSR, req.GetValiditySeconds()), "peer", addr, "identity", who.String())
	}
	der, err := ParseCSRPEM([]byte(req.GetCsrPem()))
	if err != nil {
		return nil, s.refuse(ctx, "invalid_csr", codes.InvalidArgument, err, "peer", addr, "identity", who.String())
	}
	ttl := time.Duration(min(req.GetValiditySeconds(), int64((1<<63-1)/time.Second))) * time.Second
	issued, err := s.ca.SignCSR(der, who, ttl)
	switch {
	case errors.Is(err, ErrIdentityMismatch):
		return nil, s.refuse(ctx, "identity_mismatch", codes.PermissionDenied, err, "peer", addr, "identity", who.String())
	case errors.Is(err, ErrInvalidCSR):
		return nil, s.refuse(ctx, "invalid_csr", codes.InvalidArgument, err, "peer", addr, "identity", who.String())
	case err != nil:
		s.log.ErrorContext(ctx, "ca: signing failed", "peer", addr, "identity", who.String(), "error", err)
		return nil, status.Error(codes.Internal, "ca: signing failed")
	}
	leaf := issued.Chain[0]
	if s.issued != nil {
		s.issued(ctx, who, issued)
	}
	s.log.InfoContext(ctx, "ca: issued certificate", "identity", who.String(), "spiffe_id", leaf.URIs[0].String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	resp := &cav1.CreateCertificateResponse{}
	for _, c := range issued.Chain {
		resp.CertChainPem = append(resp.CertChainPem, string(EncodeCertificatesPEM(c2s(c))))
	}
	for _, c := range issued.Bundle {
		resp.TrustBundlePem = append(resp.TrustBundlePem, string(EncodeCertificatesPEM(c2s(c))))
	}
	return resp, nil
}

// refuse logs a refused request with its reason and returns the status
// error the caller sees (the same reason, which never holds the credential).
func (s *Server) refuse(ctx context.Context, class string, code codes.Code, err error, kv ...any) error {
	if s.ca.observer != nil {
		s.ca.observer.RequestRefused(class)
	}
	s.log.WarnContext(ctx, "ca: refused certificate request", append([]any{"reason", class, "error", err.Error()}, kv...)...)
	return status.Error(code, err.Error())
}

// bearerToken reads the one `authorization: Bearer <token>` metadata value.
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(cav1.MetadataAuthorization)
	switch len(vals) {
	case 0:
		return "", fmt.Errorf("ca: %w: no %q metadata", ErrUnauthenticated, cav1.MetadataAuthorization)
	case 1:
	default:
		return "", fmt.Errorf("ca: %w: %d %q metadata values, want one", ErrUnauthenticated, len(vals), cav1.MetadataAuthorization)
	}
	v := vals[0]
	if n := len(cav1.BearerPrefix); len(v) <= n || !strings.EqualFold(v[:n], cav1.BearerPrefix) {
		return "", fmt.Errorf("ca: %w: %q metadata is not %q<token>", ErrUnauthenticated, cav1.MetadataAuthorization, cav1.BearerPrefix)
	}
	return strings.TrimSpace(v[len(cav1.BearerPrefix):]), nil
}
