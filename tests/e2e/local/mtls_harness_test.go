package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/launch"
	"github.com/weftmesh/weft/examples/shop/app"
)

// startSecureMesh is startMesh with the secure channel required and more
// launcher options (certificate lifetime, mTLS mode).
func startSecureMesh(t *testing.T, p meshParams, opts ...launch.Option) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, meshFile: filepath.Join(dir, "mesh.yaml")}
	e.writeFile(t, renderMesh(t, p))
	start := time.Now()
	m, err := launch.Start(t.Context(), e.meshFile, binDir, append([]launch.Option{
		launch.WithControlPlaneIP(p.IP(1)),
		launch.WithRunDir(filepath.Join(dir, "logs")),
		launch.WithLogLevel("debug"),
		launch.WithStopTimeout(3 * time.Second),
		launch.WithReadyTimeout(30 * time.Second),
		launch.WithSecureXDS(),
	}, opts...)...)
	if err != nil {
		t.Fatalf("start mesh on %s.0/24: %v", p.Base, err)
	}
	e.m = m
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs(t)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop mesh: %v", err)
		}
	})
	t.Logf("secure mesh on %s.0/24 ready in %s (logs: %s)", p.Base, time.Since(start).Round(time.Millisecond), m.RunDir())
	w, ok := m.Workload("client")
	if !ok {
		t.Fatal("no client workload")
	}
	if e.client, err = app.NewClient(w.ProxyURL(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// sidecarCert is a sidecar's admin GET /certs.
type sidecarCert struct {
	Identity string    `json:"identity"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	Roots    int       `json:"roots"`
	Failures uint64    `json:"renewalFailures"`
}

var plainHTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (e *env) sidecarCert(ctx context.Context, name string) (sidecarCert, error) {
	w, ok := e.m.Workload(name)
	if !ok {
		return sidecarCert{}, fmt.Errorf("no workload %s", name)
	}
	var c sidecarCert
	err := getJSON(ctx, "http://"+w.AdminAddress()+"/certs", &c)
	return c, err
}

// waitAllSidecars waits until cond holds for every sidecar's /certs.
func (e *env) waitAllSidecars(t *testing.T, what string, deadline time.Duration, cond func(sidecarCert) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	for {
		var missing []string
		for _, w := range e.m.Workloads() {
			c, err := e.sidecarCert(ctx, w.NodeID())
			if err != nil || !cond(c) {
				missing = append(missing, fmt.Sprintf("%s %+v %v", w.NodeID(), c, err))
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not every sidecar within %s: %s", what, deadline, strings.Join(missing, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// post sends POST to the control plane's debug server.
func (e *env) post(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.m.ControlPlane().DebugAddress+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), nil
}

// tokenOf reads a workload's join token (what a thief would steal).
func (e *env) tokenOf(t *testing.T, nodeID string) string {
	t.Helper()
	b, err := os.ReadFile(e.m.TokenFile(nodeID))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{cav1.MetadataAuthorization: cav1.BearerPrefix + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// dialCP connects to the control plane as a sidecar does (TLS verified
// against the mesh's bundle, only the control plane's SPIFFE ID) with token.
func (e *env) dialCP(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(e.m.TrustDomain())
	b, err := x509bundle.Load(td, e.m.TrustBundleFile())
	if err != nil {
		t.Fatal(err)
	}
	cpID := spiffeid.RequireFromString(mesh.SPIFFEID(td.Name(), mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount))
	tc := tlsconfig.TLSClientConfig(b, tlsconfig.AuthorizeID(cpID))
	tc.MinVersion = tls.VersionTLS13
	cc, err := grpc.NewClient(e.m.ControlPlane().XDSAddress,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// csrPEM is a CSR for spiffe://<td>/ns/<ns>/sa/<sa> with a fresh key.
func csrPEM(t *testing.T, td, ns, sa string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(mesh.SPIFFEID(td, ns, sa))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*neturl.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
