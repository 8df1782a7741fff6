package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// The integration environment: a go-control-plane ADS server on
// 127.0.0.1, a client-side sidecar ("order.shop") and a server-side sidecar
// ("payment.shop"), each on its own random loopback address with the mesh
// ports, and apps on the server's address.

const waitFor = 10 * time.Second

// reply is what a test app answers with: who served and what it saw.
type reply struct {
	App          string `json:"app"`
	Host         string `json:"host"`
	Path         string `json:"path"`
	Query        string `json:"query"`
	Proto        string `json:"proto"`
	TargetPort   string `json:"targetPort"`
	PeerIdentity string `json:"peerIdentity"`
	Connection   string `json:"connection"`
	Custom       string `json:"custom"`
	BodyLen      int    `json:"bodyLen"`
}

// app is an HTTP/1.1 upstream that also serves gRPC over h2c (the
// grpc.health.v1 service, through grpc-go's ServeHTTP): the sidecars send
// gRPC calls to their app with HTTP/2 with prior knowledge.
type app struct {
	name string
	ip   string
	port uint32
	srv  *http.Server
	hits atomic.Int64
	// delay, when set, slows every response down.
	delay atomic.Int64
	// health is the app's grpc.health.v1 service.
	health *health.Server
}

func (a *app) addr() string { return net.JoinHostPort(a.ip, strconv.FormatUint(uint64(a.port), 10)) }

func startApp(t testing.TB, name, ip string) *app {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("app %s: %v", name, err)
	}
	a := &app{name: name, ip: ip, port: uint32(ln.Addr().(*net.TCPAddr).Port)}
	payload := strings.Repeat("x", 1024)
	gs := grpc.NewServer()
	a.health = health.NewServer()
	healthgrpc.RegisterHealthServer(gs, a.health)
	testgrpc.RegisterTestServiceServer(gs, duplexEcho{})
	t.Cleanup(gs.Stop)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	a.srv = &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		if d := a.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		n, _ := io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/bench" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, payload)
			return
		}
		if r.URL.Path == "/stream" {
			f := w.(http.Flusher)
			for i := range 3 {
				fmt.Fprintf(w, "chunk %d\n", i)
				f.Flush()
				time.Sleep(20 * time.Millisecond)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-App", a.name)
		_ = json.NewEncoder(w).Encode(reply{
			App: a.name, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
			TargetPort:   r.Header.Get(mesh.HeaderTargetPort),
			PeerIdentity: r.Header.Get(mesh.HeaderPeerIdentity),
			Connection:   r.Header.Get("Connection") + r.Header.Get("Keep-Alive"),
			Custom:       r.Header.Get("X-Custom"),
			BodyLen:      int(n),
		})
	})}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() { a.srv.Close() })
	return a
}

// duplexEcho is the app's grpc.testing.TestService: FullDuplexCall answers
// each request as it arrives with its payload (bidirectional streaming).
type duplexEcho struct {
	testgrpc.UnimplementedTestServiceServer
}

func (duplexEcho) FullDuplexCall(s testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// proc is one running sidecar.
type proc struct {
	ip     string
	cancel context.CancelFunc
	done   chan error
}

func (p *proc) addr(port int) string { return net.JoinHostPort(p.ip, strconv.Itoa(port)) }

// stop cancels the sidecar and waits for Run to return.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("sidecar %s: Run: %v", p.ip, err)
		}
	case <-time.After(waitFor):
		t.Errorf("sidecar %s did not stop", p.ip)
	}
}

// randomIP returns a loopback address whose mesh ports are free, so that
// parallel test binaries do not collide.
func randomIP(t testing.TB) string {
	t.Helper()
	for range 100 {
		ip := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(150), rand.IntN(256), 2+rand.IntN(250))
		free := true
		for _, p := range []int{mesh.PortAdmin, mesh.PortOutbound, mesh.PortInbound, mesh.PortHealth} {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return ip
		}
	}
	t.Fatal("no free loopback address")
	return ""
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("WEFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startSidecar runs a sidecar for workload.namespace on a random address.
func startSidecar(t testing.TB, cp *xdstest.Server, workload, namespace, ip string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{ip: ip, cancel: cancel, done: make(chan error, 1)}
	cfg := Config{
		Workload: workload, Namespace: namespace, ServiceAccount: workload, IP: ip,
		Plaintext:    true,
		XDSAddress:   cp.Addr,
		DrainTimeout: 2 * time.Second,
		Logger:       testLogger(t).With("sidecar", workload),
		XDSOptions:   []xdsclient.Option{xdsclient.WithBackoff(20*time.Millisecond, 200*time.Millisecond)},
	}
	go func() { p.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// waitReady polls the sidecar's /ready.
func waitReady(t testing.TB, p *proc) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		resp, err := http.Get("http://" + p.addr(mesh.PortAdmin) + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar %s not ready: %v", p.ip, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// env is the two-sidecar mesh.
type env struct {
	t      testing.TB
	cp     *xdstest.Server
	client *proc // order.shop: the caller
	server *proc // payment.shop: fronts the apps
	apps   []*app
	// version counts snapshot versions per node.
	mu      sync.Mutex
	version int
	// proxy sends absolute-form requests through the client's outbound.
	proxy *http.Client
	// plain sends origin-form requests (set Host) to the outbound.
	plain *http.Client
}

const (
	ns          = "shop"
	clientNode  = "order"
	serverNode  = "payment"
	svcPayment  = "payment"
	svcInv      = "inventory"
	paymentPort = 8080
	invPort     = 9090
)

var (
	paymentCluster   = mesh.OutboundClusterName(paymentPort, mesh.ServiceHost(svcPayment, ns, mesh.DefaultClusterDomain))
	payment80Cluster = mesh.OutboundClusterName(80, mesh.ServiceHost(svcPayment, ns, mesh.DefaultClusterDomain))
	invCluster       = mesh.OutboundClusterName(invPort, mesh.ServiceHost(svcInv, ns, mesh.DefaultClusterDomain))
)

// newEnv starts the control plane, both sidecars and three apps behind the
// server sidecar, and pushes the base configuration.
func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, cp: xdstest.Start(t, "127.0.0.1:0")}
	e.client = startSidecar(t, e.cp, clientNode, ns, randomIP(t))
	e.server = startSidecar(t, e.cp, serverNode, ns, randomIP(t))
	for i := range 3 {
		e.apps = append(e.apps, startApp(t, fmt.Sprintf("payment-%d", i), e.server.ip))
	}
	outURL := &url.URL{Scheme: "http", Host: e.client.addr(mesh.PortOutbound)}
	e.proxy = &http.Client{Timeout: waitFor, Transport: &http.Transport{Proxy: http.ProxyURL(outURL), MaxIdleConnsPerHost: 64}}
	e.plain = &http.Client{Timeout: waitFor, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() {
		e.proxy.CloseIdleConnections()
		e.plain.CloseIdleConnections()
	})
	e.pushServer()
	e.pushClient(e.tunnelEndpoints(e.apps[0]), e.tunnelEndpoints(e.apps...))
	waitReady(t, e.client)
	waitReady(t, e.server)
	return e
}

func (e *env) nextVersion() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version++
	return strconv.Itoa(e.version)
}

// tunnelEndpoints are the apps as endpoints behind the server sidecar.
func (e *env) tunnelEndpoints(apps ...*app) []xdstest.Endpoint {
	var out []xdstest.Endpoint
	for _, a := range apps {
		out = append(out, xdstest.Endpoint{
			IP: a.ip, Port: a.port, TunnelPort: mesh.PortInbound,
			Workload: mesh.NodeID(serverNode, ns), Identity: mesh.SPIFFEID(mesh.DefaultTrustDomain, ns, serverNode),
		})
	}
	return out
}

// pushServer configures the server sidecar: an inbound chain per app port.
func (e *env) pushServer() {
	var ports []uint32
	var clusters []*cluster.Cluster
	for _, a := range e.apps {
		ports = append(ports, a.port)
		clusters = append(clusters, xdstest.InboundCluster(a.ip, a.port))
	}
	e.cp.Set(mesh.NodeID(serverNode, ns), e.nextVersion(), xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(e.server.ip), xdstest.InboundListener(e.server.ip, ports...)},
		Routes:    []*route.RouteConfiguration{xdstest.OutboundRoute()},
		Clusters:  clusters,
	})
}

// services are extra outbound services for pushClient.
type services struct {
	VirtualHosts []*route.VirtualHost
	Clusters     []*cluster.Cluster
	Endpoints    []*endpoint.ClusterLoadAssignment
}

// pushClient configures the client sidecar: payment on 8080 and 80 with
// paymentEPs, inventory on 9090 with invEPs, plus the extra services.
func (e *env) pushClient(paymentEPs, invEPs []xdstest.Endpoint, extra ...services) string {
	r := xdstest.Resources{
		Listeners: []*listener.Listener{xdstest.OutboundListener(e.client.ip), xdstest.InboundListener(e.client.ip)},
		Routes: []*route.RouteConfiguration{xdstest.OutboundRoute(
			xdstest.ServiceVirtualHost(svcPayment, ns, paymentPort, true),
			xdstest.ServiceVirtualHost(svcPayment, ns, 80, true),
			xdstest.ServiceVirtualHost(svcInv, ns, invPort, true),
		)},
		Clusters: []*cluster.Cluster{
			xdstest.OutboundCluster(svcPayment, ns, paymentPort),
			xdstest.OutboundCluster(svcPayment, ns, 80),
			xdstest.OutboundCluster(svcInv, ns, invPort),
		},
		Endpoints: []*endpoint.ClusterLoadAssignment{
			xdstest.Assignment(paymentCluster, paymentEPs...),
			xdstest.Assignment(payment80Cluster, paymentEPs...),
			xdstest.Assignment(invCluster, invEPs...),
		},
	}
	for _, x := range extra {
		r.Clusters = append(r.Clusters, x.Clusters...)
		r.Endpoints = append(r.Endpoints, x.Endpoints...)
		r.Routes[0].VirtualHosts = append(r.Routes[0].VirtualHosts, x.VirtualHosts...)
	}
	v := e.nextVersion()
	e.cp.Set(mesh.NodeID(clientNode, ns), v, r)
	return v
}

// result is one response as the app or the sidecar gave it.
type result struct {
	status int
	body   string
	reply  reply
}

// get sends GET url through the outbound: absolute-form when viaProxy,
// else origin-form with Host.
func (e *env) get(viaProxy bool, host, path string, hdr ...string) result {
	e.t.Helper()
	var req *http.Request
	var err error
	if viaProxy {
		req, err = http.NewRequest("GET", "http://"+host+path, nil)
	} else {
		req, err = http.NewRequest("GET", "http://"+e.client.addr(mesh.PortOutbound)+path, nil)
		if err == nil {
			req.Host = host
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := e.plain
	if viaProxy {
		c = e.proxy
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s%s: read: %v", host, path, err)
	}
	res := result{status: resp.StatusCode, body: string(b)}
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(b, &res.reply); err != nil {
			e.t.Fatalf("GET %s%s: %v: %s", host, path, err, b)
		}
	}
	return res
}

// eventually retries f until it returns true.
func (e *env) eventually(what string, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(name string) ([]byte, error) { return os.ReadFile(name) }
