package ca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
)

// startServer serves the CA service on a random loopback port and returns a
// client for it and the server's log.
func startServer(t *testing.T, a *Authority, auth Authenticator) (cav1grpc.CertificateServiceClient, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	NewServer(a, auth, slog.New(slog.NewTextHandler(logs, nil))).Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return cav1grpc.NewCertificateServiceClient(conn), logs
}

func TestServerCreateCertificate(t *testing.T) {
	a := newTestAuthority(t)
	tokens := NewJoinTokens(nil)
	tokPayment, err := tokens.Mint(paymentID, 0)
	if err != nil {
		t.Fatal(err)
	}
	cart := Identity{Namespace: "shop", ServiceAccount: "cart", Workload: "cart-1"}
	tokCart, err := tokens.Mint(cart, 0)
	if err != nil {
		t.Fatal(err)
	}
	client, logs := startServer(t, a, tokens)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	paymentCSR := csrPEM(spiffeCSR(t, p256(t), "shop", "payment"))

	tests := []struct {
		name     string
		auth     []string // authorization metadata values
		csr      string
		validity int64
		wantCode codes.Code
		wantLog  []string // on refusal: what the log line says
		wantTTL  time.Duration
	}{
		{name: "valid", auth: []string{"Bearer " + tokPayment}, csr: paymentCSR, wantTTL: 24 * time.Hour},
		{name: "valid, short validity", auth: []string{"bearer " + tokPayment}, csr: paymentCSR, validity: 5, wantTTL: 5 * time.Second},
		{name: "no credential", csr: paymentCSR, wantCode: codes.Unauthenticated, wantLog: []string{"reason=unauthenticated", "no \\\"authorization\\\" metadata"}},
		{name: "not bearer", auth: []string{"Basic " + tokPayment}, csr: paymentCSR, wantCode: codes.Unauthenticated, wantLog: []string{"reason=unauthenticated"}},
		{name: "two credentials", auth: []string{"Bearer " + tokPayment, "Bearer " + tokCart}, csr: paymentCSR, wantCode: codes.Unauthenticated},
		{name: "unknown token", auth: []string{"Bearer wjt_nope"}, csr: paymentCSR, wantCode: codes.Unauthenticated, wantLog: []string{"unknown or revoked token"}},
		{
			name: "CSR for an identity the token does not prove", auth: []string{"Bearer " + tokPayment},
			csr: csrPEM(spiffeCSR(t, p256(t), "shop", "cart")), wantCode: codes.PermissionDenied,
			wantLog: []string{"reason=identity_mismatch", "csr asks for spiffe://cluster.local/ns/shop/sa/cart, credential proves spiffe://cluster.local/ns/shop/sa/payment", "identity=\"payment-1.shop (sa payment)\""},
		},
		{
			// cart's sidecar stole payment's token: it still asks for its
			// own identity, which payment's token does not prove.
			name: "token of workload A replayed for workload B", auth: []string{"Bearer " + tokCart},
			csr: paymentCSR, wantCode: codes.PermissionDenied,
			wantLog: []string{"reason=identity_mismatch", "credential proves spiffe://cluster.local/ns/shop/sa/cart"},
		},
		{name: "RSA key", auth: []string{"Bearer " + tokPayment}, csr: csrPEM(csrDER(t, rsaKey, x509.CertificateRequest{URIs: uris(t, "spiffe://cluster.local/ns/shop/sa/payment")})), wantCode: codes.InvalidArgument, wantLog: []string{"reason=invalid_csr", "ECDSA P-256"}},
		{name: "extra SANs", auth: []string{"Bearer " + tokPayment}, csr: csrPEM(csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "spiffe://cluster.local/ns/shop/sa/payment"), DNSNames: []string{"evil.example"}})), wantCode: codes.InvalidArgument, wantLog: []string{"reason=invalid_csr", "DNS SANs"}},
		{name: "not PEM", auth: []string{"Bearer " + tokPayment}, csr: "hello", wantCode: codes.InvalidArgument},
		{name: "negative validity", auth: []string{"Bearer " + tokPayment}, csr: paymentCSR, validity: -1, wantCode: codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, v := range tc.auth {
				ctx = metadata.AppendToOutgoingContext(ctx, cav1.MetadataAuthorization, v)
			}
			before := len(logs.String())
			start := time.Now()
			resp, err := client.CreateCertificate(ctx, &cav1.CreateCertificateRequest{CsrPem: tc.csr, ValiditySeconds: tc.validity})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantCode != codes.OK {
				line := logs.String()[before:]
				if !strings.Contains(line, "ca: refused certificate request") {
					t.Errorf("refusal not logged; log: %s", line)
				}
				for _, w := range tc.wantLog {
					if !strings.Contains(line, w) {
						t.Errorf("log line does not say %s; log: %s", w, line)
					}
				}
				for _, tok := range []string{tokPayment, tokCart} {
					if strings.Contains(line, tok) || strings.Contains(err.Error(), tok) {
						t.Error("a token was logged or returned")
					}
				}
				return
			}
			chain := mustCerts(t, []byte(strings.Join(resp.GetCertChainPem(), "")))
			roots := mustCerts(t, []byte(strings.Join(resp.GetTrustBundlePem(), "")))
			if len(resp.GetCertChainPem()) != 1 || len(resp.GetTrustBundlePem()) != 1 {
				t.Fatalf("chain %d PEMs, bundle %d; want 1 and 1", len(resp.GetCertChainPem()), len(resp.GetTrustBundlePem()))
			}
			id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(testTD, roots))
			if err != nil || id.String() != "spiffe://cluster.local/ns/shop/sa/payment" {
				t.Fatalf("x509svid.Verify = %v, %v", id, err)
			}
			if d := chain[0].NotAfter.Sub(start); d < tc.wantTTL-2*time.Second || d > tc.wantTTL+time.Second {
				t.Errorf("lifetime %s, want %s", d, tc.wantTTL)
			}
		})
	}
}
