package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
)

// CA signs the workload's CSRs. GRPCCA is the mesh CA service's client.
type CA interface {
	// Sign sends a PEM CSR and returns the chain (leaf first) and the trust
	// bundle. validity 0 asks for the CA's default lifetime.
	Sign(ctx context.Context, csrPEM []byte, validity time.Duration) (chain, roots []*x509.Certificate, err error)
}

// Run keeps the certificate fresh until ctx ends: it asks ca for the first
// certificate at once, then renews at the renewal point of each certificate
// (about half its lifetime, jittered). A failed renewal is retried with
// exponential backoff (WithBackoff) for as long as it takes; the current
// certificate stays in use until it expires. A certificate pushed from
// outside (SetX509SVID) reschedules the next renewal. Run returns nil when
// ctx ends.
func (m *Manager) Run(ctx context.Context, ca CA) error {
	delay := m.boInitial
	for {
		m.mu.RLock()
		wait, changed := time.Until(m.renewAt), m.changed
		if m.svid == nil {
			wait = 0
		}
		m.mu.RUnlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-changed:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		err := m.renew(ctx, ca)
		if m.onRenew != nil && ctx.Err() == nil {
			m.onRenew(err)
		}
		if err == nil {
			delay = m.boInitial
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		m.failures.Add(1)
		sleep := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64())) //nolint:gosec // jitter, not a secret
		st := m.Status()
		m.log.Warn("identity: certificate renewal failed; keeping the current certificate and retrying",
			"spiffe_id", m.id.String(), "error", err, "retry_in", sleep.Round(time.Millisecond).String(),
			"serial", st.Serial, "not_after", st.NotAfter.UTC().Format(time.RFC3339), "failures", st.Failures)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, m.boMax)
	}
}

func (m *Manager) renew(ctx context.Context, ca CA) error {
	csr, err := m.CSR()
	if err != nil {
		return err
	}
	chain, roots, err := ca.Sign(ctx, csr, m.validity)
	if err != nil {
		return err
	}
	return m.Apply(chain, roots)
}

// Credential returns the credential to send with a CSR: a join token, or a
// projected ServiceAccount token (re-read for each request, as the kubelet
// rotates it).
type Credential func(ctx context.Context) (string, error)

// StaticToken is a fixed credential, such as a join token.
func StaticToken(token string) Credential {
	return func(context.Context) (string, error) { return token, nil }
}

// TokenFile reads the credential from path at every request.
func TokenFile(path string) Credential {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("identity: reading credential: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// GRPCCA is the client of the mesh CA's gRPC service
// (weft.ca.v1.CertificateService), spoken with connect's gRPC protocol on
// an HTTP/2 client the caller owns (sidecar/internal/cpconn: TLS, verified
// with the trust bundle the workload was started with).
type GRPCCA struct {
	client *connect.Client[cav1.CreateCertificateRequest, cav1.CreateCertificateResponse]
	cred   Credential
}

var _ CA = (*GRPCCA)(nil)

// NewGRPCCA returns a CA client for the server at baseURL
// (https://host:port) on hc that sends cred with each request.
func NewGRPCCA(hc connect.HTTPClient, baseURL string, cred Credential) *GRPCCA {
	return &GRPCCA{
		client: connect.NewClient[cav1.CreateCertificateRequest, cav1.CreateCertificateResponse](
			hc, baseURL+cav1.ProcedureCreateCertificate, connect.WithGRPC()),
		cred: cred,
	}
}

// Sign implements CA.
func (c *GRPCCA) Sign(ctx context.Context, csrPEM []byte, validity time.Duration) (chain, roots []*x509.Certificate, err error) {
	tok, err := c.cred(ctx)
	if err != nil {
		return nil, nil, err
	}
	req := connect.NewRequest(&cav1.CreateCertificateRequest{
		CsrPem:          string(csrPEM),
		ValiditySeconds: int64(validity / time.Second),
	})
	req.Header().Set(cav1.MetadataAuthorization, cav1.BearerPrefix+tok)
	res, err := c.client.CallUnary(ctx, req)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: CA: %w", err)
	}
	resp := res.Msg
	if chain, err = ParseCertificatesPEM([]byte(strings.Join(resp.GetCertChainPem(), "\n"))); err != nil {
		return nil, nil, fmt.Errorf("identity: CA response chain: %w", err)
	}
	if roots, err = ParseCertificatesPEM([]byte(strings.Join(resp.GetTrustBundlePem(), "\n"))); err != nil {
		return nil, nil, fmt.Errorf("identity: CA response bundle: %w", err)
	}
	return chain, roots, nil
}
