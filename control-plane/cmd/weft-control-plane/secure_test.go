package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/control-plane/xds"
)

const secureMesh = `apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: payment-1, namespace: shop, labels: {app: payment}}
spec: {address: 127.0.0.2, serviceAccount: payment}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: client, namespace: shop}
spec: {address: 127.0.0.3, serviceAccount: client}
`

// syncBuffer is a log sink the test reads while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{cav1.MetadataAuthorization: cav1.BearerPrefix + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// secureCP is a control plane run in-process with a CA dir and join tokens.
type secureCP struct {
	xds, debug string
	caDir      string
	tokens     map[string]string // by workload
	logs       *syncBuffer
	td         spiffeid.TrustDomain
}

func startSecure(t *testing.T) *secureCP {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, []byte(secureMesh), 0o600); err != nil {
		t.Fatal(err)
	}
	jt := ca.NewJoinTokens(nil)
	s := &secureCP{caDir: filepath.Join(dir, "ca"), tokens: map[string]string{}, logs: &syncBuffer{}, td: spiffeid.RequireTrustDomainFromString("cluster.local")}
	for _, w := range [][2]string{{"client", "client"}, {"payment-1", "payment"}} {
		tok, err := jt.Mint(ca.Identity{Namespace: "shop", ServiceAccount: w[1], Workload: w[0]}, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[w[0]] = tok
	}
	if err := jt.WriteFile(filepath.Join(dir, "tokens.json")); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{
		"--file=" + path, "--xds-address=127.0.0.1:0", "--debug-address=127.0.0.1:0",
		"--ca-dir=" + s.caDir, "--join-tokens=" + filepath.Join(dir, "tokens.json"), "--cert-lifetime=1h",
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- run(ctx, cfg, log, func(x, d net.Addr) { addrs <- [2]net.Addr{x, d} }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop within 10s")
		}
		if t.Failed() {
			t.Logf("control plane log:\n%s", s.logs.String())
		}
	})
	select {
	case a := <-addrs:
		s.xds, s.debug = a[0].String(), "http://"+a[1].String()
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not listening within 5s")
	}
	waitUntil(t, "healthz 200", func() bool { code, _ := get(t, s.debug+"/healthz"); return code == http.StatusOK })
	return s
}

// dial connects as a sidecar does: TLS verified with go-spiffe against the
// CA dir's bundle, authorizing only the control plane's ID, and the token
// (if any) on every call.
func (s *secureCP) dial(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	b, err := x509bundle.Load(s.td, filepath.Join(s.caDir, ca.FileBundle))
	if err != nil {
		t.Fatal(err)
	}
	cpID := spiffeid.RequireFromString(mesh.SPIFFEID(s.td.Name(), mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount))
	tc := tlsconfig.TLSClientConfig(b, tlsconfig.AuthorizeID(cpID))
	tc.MinVersion = tls.VersionTLS13
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cc, err := grpc.NewClient(s.xds, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func csrFor(t *testing.T, td spiffeid.TrustDomain, ns, sa string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(mesh.SPIFFEID(td.Name(), ns, sa))
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// adsFirst opens an ADS stream as node, asks for typ and returns the first
// response or the stream's error.
func adsFirst(t *testing.T, cc *grpc.ClientConn, node, typ string, names ...string) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *discovery.DiscoveryResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: typ, ResourceNames: names}); err != nil {
		_, rerr := st.Recv() // the stream's status
		return nil, nil, rerr
	}
	r, err := st.Recv()
	return st, r, err
}

func secretsOf(t *testing.T, r *discovery.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range r.GetResources() {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		out[s.GetName()] = s
	}
	return out
}

func countPEM(b []byte) int { return strings.Count(string(b), "BEGIN CERTIFICATE") }

func post(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

func TestSecureXDSRefusals(t *testing.T) {
	s := startSecure(t)
	cases := []struct {
		name    string
		token   string
		node    string
		code    codes.Code
		logLine string
	}{
		{"no credential", "", "client.shop", codes.Unauthenticated, "xds: refused stream: unauthenticated"},
		{"unknown token", "wjt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "client.shop", codes.Unauthenticated, "xds: refused stream: unauthenticated"},
		{"another node's config", s.tokens["client"], "payment-1.shop", codes.PermissionDenied, `requested_node=payment-1.shop`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := adsFirst(t, s.dial(t, c.token), c.node, resource.ClusterType)
			if status.Code(err) != c.code {
				t.Fatalf("ADS as %s: %v, want %s", c.node, err, c.code)
			}
			waitUntil(t, "log line "+c.logLine, func() bool { return strings.Contains(s.logs.String(), c.logLine) })
		})
	}
	t.Run("csr for an identity the token does not prove", func(t *testing.T) {
		cl := cav1grpc.NewCertificateServiceClient(s.dial(t, s.tokens["client"]))
		_, err := cl.CreateCertificate(t.Context(), &cav1.CreateCertificateRequest{CsrPem: csrFor(t, s.td, "shop", "payment")})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("CreateCertificate = %v, want PermissionDenied", err)
		}
		waitUntil(t, "refusal logged", func() bool {
			return strings.Contains(s.logs.String(), "ca: refused certificate request") && strings.Contains(s.logs.String(), "reason=identity_mismatch")
		})
	})
	t.Run("plaintext to the xDS port", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", s.xds, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		// An HTTP/2 preface in the clear gets no HTTP/2 answer.
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if n >= 9 && buf[3] == 0x4 { // a SETTINGS frame
			t.Fatalf("plaintext HTTP/2 was answered: % x", buf[:n])
		}
	})
}

func TestSecureXDSSecretsAndRotation(t *testing.T) {
	s := startSecure(t)
	cc := s.dial(t, s.tokens["client"])
	issue := func() *x509.Certificate {
		t.Helper()
		resp, err := cav1grpc.NewCertificateServiceClient(cc).CreateCertificate(t.Context(), &cav1.CreateCertificateRequest{CsrPem: csrFor(t, s.td, "shop", "client")})
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ca.ParseCertificatesPEM([]byte(resp.GetCertChainPem()[0]))
		if err != nil {
			t.Fatal(err)
		}
		return certs[0]
	}
	leaf := issue()

	st, r, err := adsFirst(t, cc, "client.shop", resource.SecretType, mesh.SecretWorkloadCert, mesh.SecretRootCA)
	if err != nil {
		t.Fatal(err)
	}
	sec := secretsOf(t, r)
	chain := sec[mesh.SecretWorkloadCert].GetTlsCertificate()
	if chain == nil || chain.GetPrivateKey() != nil {
		t.Fatalf("default secret %v: want a chain without a key", sec[mesh.SecretWorkloadCert])
	}
	got, err := ca.ParseCertificatesPEM(chain.GetCertificateChain().GetInlineBytes())
	if err != nil || got[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("default secret serial %v (err %v), want the issued %x", got, err, leaf.SerialNumber)
	}
	if n := countPEM(sec[mesh.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()); n != 1 {
		t.Fatalf("ROOTCA holds %d roots, want 1", n)
	}
	ack := func(r *discovery.DiscoveryResponse) {
		t.Helper()
		if err := st.Send(&discovery.DiscoveryRequest{
			TypeUrl: resource.SecretType, ResourceNames: []string{mesh.SecretWorkloadCert, mesh.SecretRootCA},
			VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	ack(r)

	code, body := get(t, s.debug+"/debug/certs")
	var certs []xds.CertStatus
	if code != http.StatusOK || json.Unmarshal(body, &certs) != nil || len(certs) != 1 || certs[0].Proxy != "client.shop" ||
		certs[0].Serial != leaf.SerialNumber.Text(16) || certs[0].Identity != "spiffe://cluster.local/ns/shop/sa/client" {
		t.Fatalf("/debug/certs = %d %s", code, body)
	}
	if strings.Contains(string(body), "PRIVATE") {
		t.Fatal("/debug/certs shows a key")
	}

	// Renewal: the new chain is pushed over SDS.
	leaf2 := issue()
	r = recvType(t, st, resource.SecretType)
	got, _ = ca.ParseCertificatesPEM(secretsOf(t, r)[mesh.SecretWorkloadCert].GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if got[0].SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
		t.Fatalf("after renewal the pushed serial is %x, want %x", got[0].SerialNumber, leaf2.SerialNumber)
	}
	ack(r)

	// Root rotation: add pushes a two-root bundle.
	if code, b := post(t, s.debug+"/debug/ca/rotate-root?step=add"); code != http.StatusOK {
		t.Fatalf("add: %d %s", code, b)
	}
	r = recvType(t, st, resource.SecretType)
	if n := countPEM(secretsOf(t, r)[mesh.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()); n != 2 {
		t.Fatalf("after add, ROOTCA holds %d roots, want 2", n)
	}
	ack(r)
	// remove before activate would drop the new root: refused.
	if code, b := post(t, s.debug+"/debug/ca/rotate-root?step=remove"); code != http.StatusConflict || !strings.Contains(string(b), "not activated") {
		t.Fatalf("remove before activate: %d %s, want 409", code, b)
	}
	oldRoot := cpRoot(t, s)
	if code, b := post(t, s.debug+"/debug/ca/rotate-root?step=activate"); code != http.StatusOK {
		t.Fatalf("activate: %d %s", code, b)
	}
	// The control plane's own certificate moves to the new root.
	waitUntil(t, "control plane certificate from the new root", func() bool { return !cpRoot(t, s).Equal(oldRoot) })
	// client.shop still holds a certificate from the old root: remove waits.
	if code, b := post(t, s.debug+"/debug/ca/rotate-root?step=remove"); code != http.StatusConflict || !strings.Contains(string(b), "client.shop") {
		t.Fatalf("remove with an old certificate in use: %d %s, want 409 naming client.shop", code, b)
	}
	issue()
	r = recvType(t, st, resource.SecretType)
	ack(r)
	if code, b := post(t, s.debug+"/debug/ca/rotate-root?step=remove"); code != http.StatusOK {
		t.Fatalf("remove: %d %s", code, b)
	}
	r = recvType(t, st, resource.SecretType)
	if n := countPEM(secretsOf(t, r)[mesh.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()); n != 1 {
		t.Fatalf("after remove, ROOTCA holds %d roots, want 1", n)
	}
	_, body = get(t, s.debug+"/metrics")
	for _, want := range []string{`weft_ca_signings_total{result="issued"}`, "weft_ca_certificates 1", "weft_ca_trust_bundle_roots 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

// cpRoot is the root that signs the control plane's current certificate,
// as a fresh TLS handshake shows it.
func cpRoot(t *testing.T, s *secureCP) *x509.Certificate {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13}} //nolint:gosec // G402: only reads the served chain.
	c, err := d.DialContext(t.Context(), "tcp", s.xds)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	roots, err := ca.ParseCertificatesPEM(mustRead(t, filepath.Join(s.caDir, ca.FileBundle)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		if leaf.CheckSignatureFrom(r) == nil {
			return r
		}
	}
	t.Fatal("control plane certificate chains to no root of the bundle")
	return nil
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recvType(t *testing.T, s discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typ string) *discovery.DiscoveryResponse {
	t.Helper()
	type res struct {
		r   *discovery.DiscoveryResponse
		err error
	}
	ch := make(chan res, 1)
	go func() { r, err := s.Recv(); ch <- res{r, err} }()
	select {
	case x := <-ch:
		if x.err != nil {
			t.Fatalf("recv: %v", x.err)
		}
		if x.r.GetTypeUrl() != typ {
			t.Fatalf("got %s, want %s", x.r.GetTypeUrl(), typ)
		}
		return x.r
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s response within 5s", typ)
	}
	return nil
}
