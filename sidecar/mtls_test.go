package sidecar

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/identity"
	"github.com/weftmesh/weft/sidecar/internal/testca"
	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/transport"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// mtlsEnv is a control plane on TLS with the CA service, and two sidecars
// that bootstrap their identity from it.
type mtlsEnv struct {
	ca             *testca.CA
	cp             *xdstest.Server
	client, server *proc
	app            *app
	version        int
}

func startSecureSidecar(t testing.TB, ca *testca.CA, cp *xdstest.Server, workload, ip string, mtlsOpts ...transport.MTLSOption) *proc {
	t.Helper()
	dir := t.TempDir()
	bundle, token := filepath.Join(dir, "roots.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(bundle, testca.PEM(ca.Root), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(ca.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{ip: ip, cancel: cancel, done: make(chan error, 1)}
	cfg := Config{
		Workload: workload, Namespace: ns, ServiceAccount: workload, IP: ip,
		XDSAddress: cp.Addr, CABundle: bundle, TokenFile: token,
		DrainTimeout:    2 * time.Second,
		Logger:          testLogger(t).With("sidecar", workload),
		XDSOptions:      []xdsclient.Option{xdsclient.WithBackoff(20*time.Millisecond, 200*time.Millisecond)},
		IdentityOptions: []identity.Option{identity.WithBackoff(50*time.Millisecond, 300*time.Millisecond)},
		MTLSOptions:     mtlsOpts,
	}
	go func() { p.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func newMTLSEnv(t testing.TB, lifetime time.Duration, permissive bool, mtlsOpts ...transport.MTLSOption) *mtlsEnv {
	t.Helper()
	e := &mtlsEnv{ca: testca.New(t, "root", lifetime)}
	td := spiffeid.RequireTrustDomainFromString(mesh.DefaultTrustDomain)
	cpID := spiffeid.RequireFromPath(td, "/ns/"+mesh.ControlPlaneNamespace+"/sa/"+mesh.ControlPlaneServiceAccount)
	e.cp = xdstest.StartWith(t, "127.0.0.1:0", func(s *grpc.Server) { cav1grpc.RegisterCertificateServiceServer(s, e.ca) },
		grpc.Creds(credentials.NewTLS(e.ca.ServerTLS(t, cpID))))
	e.client = startSecureSidecar(t, e.ca, e.cp, clientNode, randomIP(t), mtlsOpts...)
	e.server = startSecureSidecar(t, e.ca, e.cp, serverNode, randomIP(t))
	e.app = startApp(t, "payment-0", e.server.ip)
	e.push(permissive, mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, serverNode))
	waitReady(t, e.client)
	waitReady(t, e.server)
	return e
}

// push configures both sidecars: the server's inbound with mTLS chains,
// the client's payment cluster with an UpstreamTlsContext allowing peerIDs.
func (e *mtlsEnv) push(permissive bool, peerIDs ...string) {
	e.version++
	v := strconv.Itoa(e.version)
	secrets := []*tlsv3.Secret{xdstest.RootSecret(e.ca.Root)}
	e.cp.Set(mesh.NodeID(serverNode, ns), v, xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(e.server.ip), xdstest.MTLSInboundListener(e.server.ip, mesh.DefaultTrustDomain, permissive, e.app.port)},
		Routes:    []*route.RouteConfiguration{xdstest.OutboundRoute()},
		Clusters:  []*cluster.Cluster{xdstest.InboundCluster(e.app.ip, e.app.port)},
		Secrets:   secrets,
	})
	// The route retries as the control plane's default policy says (every
	// mesh route has one).
	vh := xdstest.ServiceVirtualHost(svcPayment, ns, paymentPort, true)
	vh.Routes[0].GetRoute().RetryPolicy = xdstest.MeshRetryPolicy()
	vh.Routes[0].RequestBodyBufferLimit = wrapperspb.UInt64(mesh.DefaultRetryBufferBytes)
	e.cp.Set(mesh.NodeID(clientNode, ns), v, xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(e.client.ip)},
		Routes:    []*route.RouteConfiguration{xdstest.OutboundRoute(vh)},
		Clusters:  []*cluster.Cluster{xdstest.WithUpstreamTLS(xdstest.OutboundCluster(svcPayment, ns, paymentPort), peerIDs...)},
		Endpoints: []*endpoint.ClusterLoadAssignment{xdstest.Assignment(paymentCluster, xdstest.Endpoint{
			IP: e.app.ip, Port: e.app.port, TunnelPort: mesh.PortInbound,
			Workload: mesh.NodeID(serverNode, ns), Identity: mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, serverNode),
		})},
		Secrets: secrets,
	})
}

func (e *mtlsEnv) get(t *testing.T, c *http.Client) (int, reply) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+e.client.addr(mesh.PortOutbound)+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = svcPayment + ":" + strconv.Itoa(paymentPort)
	req.Header.Set(mesh.HeaderPeerIdentity, "spiffe://cluster.local/ns/shop/sa/forged")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, r
}

func TestMTLSPair(t *testing.T) {
	e := newMTLSEnv(t, time.Hour, false)
	c := &http.Client{Timeout: waitFor}
	defer c.CloseIdleConnections()

	t.Run("request over mTLS carries the verified identity", func(t *testing.T) {
		code, r := e.get(t, c)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if want := mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, clientNode); r.PeerIdentity != want {
			t.Errorf("peer identity = %q, want %q (the forged header must be replaced)", r.PeerIdentity, want)
		}
	})

	t.Run("plaintext to a STRICT inbound is refused", func(t *testing.T) {
		before := e.app.hits.Load()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+e.server.addr(mesh.PortInbound)+"/", nil)
		req.Header.Set(mesh.HeaderTargetPort, strconv.FormatUint(uint64(e.app.port), 10))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || e.app.hits.Load() != before {
			t.Errorf("status %d, app hits %d -> %d; want 403 and no traffic", resp.StatusCode, before, e.app.hits.Load())
		}
	})

	t.Run("rogue CA claiming a valid SPIFFE ID is refused", func(t *testing.T) {
		rogue := testca.New(t, "rogue", time.Hour)
		svid := rogue.SVID(t, mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, clientNode), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		checkRefused(t, e, svid.Certificates[0].Raw, svid.PrivateKey)
	})
	t.Run("expired certificate is refused", func(t *testing.T) {
		svid := e.ca.SVID(t, mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, clientNode), time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
		checkRefused(t, e, svid.Certificates[0].Raw, svid.PrivateKey)
	})
	t.Run("another trust domain is refused", func(t *testing.T) {
		svid := e.ca.SVID(t, "spiffe://evil.example/ns/shop/sa/order", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		checkRefused(t, e, svid.Certificates[0].Raw, svid.PrivateKey)
	})

	t.Run("peer not in the cluster's SAN list: the client refuses the server", func(t *testing.T) {
		e.push(false, mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, "someone-else"))
		refused := func(code int) bool { return code == http.StatusBadGateway || code == http.StatusServiceUnavailable }
		deadline := time.Now().Add(waitFor)
		for {
			code, _ := e.get(t, c)
			if refused(code) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d after the SAN list changed", code)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Requests answered before the new SAN list applied reached the app
		// legitimately; from the first refusal on, none may.
		before := e.app.hits.Load()
		for i := range 5 {
			if code, _ := e.get(t, c); !refused(code) {
				t.Errorf("request %d after the refusal: %d, want 502 or 503", i, code)
			}
		}
		if got := e.app.hits.Load(); got != before {
			t.Errorf("app hits %d -> %d: traffic passed a refused server", before, got)
		}
		e.push(false, mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, serverNode))
	})
}

// checkRefused dials the server's inbound with the given certificate and
// expects the handshake (or the first read) to fail, with no app traffic.
func checkRefused(t *testing.T, e *mtlsEnv, der []byte, key any) {
	t.Helper()
	before := e.app.hits.Load()
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}, InsecureSkipVerify: true, //nolint:gosec // the test checks the server side
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}
	conn, err := tls.Dial("tcp", e.server.addr(mesh.PortInbound), cfg)
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("the inbound accepted the connection")
	}
	if !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Logf("refused with %v", err)
	}
	if e.app.hits.Load() != before {
		t.Error("traffic reached the app")
	}
}
