package transport_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/transport"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serve starts an h2c + HTTP/1.1 server that echoes what it saw.
func serve(t *testing.T, delay time.Duration) (*countingListener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Target-Port", r.Header.Get(mesh.HeaderTargetPort))
		_, _ = io.WriteString(w, r.URL.RequestURI())
	})}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { srv.Close() })
	return cl, ln.Addr().String()
}

func request(t *testing.T, host, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://placeholder"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Host = ""
	req.Host = host
	return req
}

// h2Clients are the HTTP/2 clients a Mesh can use (WithHTTP2Client).
var h2Clients = []string{transport.HTTP2ClientWeft, transport.HTTP2ClientNetHTTP}

func TestTunnelIsMultiplexedH2C(t *testing.T) {
	for _, client := range h2Clients {
		t.Run(client, func(t *testing.T) { testTunnelIsMultiplexedH2C(t, client) })
	}
}

func testTunnelIsMultiplexedH2C(t *testing.T, client string) {
	cl, addr := serve(t, 50*time.Millisecond)
	m := transport.New(transport.WithHTTP2Client(client))
	defer m.Close()
	ep := &lb.Endpoint{Addr: "127.0.0.9:8080", TargetPort: "8080", TunnelAddr: addr}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			resp, err := m.RoundTrip(request(t, "payment.shop:8080", "/x?y=1"), ep)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Header.Get("X-Proto") != "HTTP/2.0" || resp.Header.Get("X-Host") != "payment.shop:8080" ||
				resp.Header.Get("X-Target-Port") != "8080" || string(body) != "/x?y=1" {
				t.Errorf("upstream saw proto %q host %q target port %q uri %q", resp.Header.Get("X-Proto"),
					resp.Header.Get("X-Host"), resp.Header.Get("X-Target-Port"), body)
			}
		})
	}
	wg.Wait()
	if n := cl.n.Load(); n != 1 {
		t.Errorf("%d connections for 30 concurrent requests, want 1 (multiplexed)", n)
	}
}

func TestDirectIsPooledHTTP1(t *testing.T) {
	cl, addr := serve(t, 0)
	m := transport.New()
	defer m.CloseIdleConnections()
	ep := &lb.Endpoint{Addr: addr, TargetPort: "1"}
	for range 20 {
		resp, err := m.RoundTrip(request(t, "app", "/"), ep)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		// Before Close: the HTTP/1.1 pool recycles the map then.
		proto, port := resp.Header.Get("X-Proto"), resp.Header.Get("X-Target-Port")
		resp.Body.Close()
		if proto != "HTTP/1.1" || port != "" {
			t.Fatalf("upstream saw proto %q target port %q", proto, port)
		}
	}
	if n := cl.n.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential requests, want 1 (keep-alive)", n)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	for _, client := range h2Clients {
		m := transport.New(transport.WithConnectTimeout(time.Second), transport.WithHTTP2Client(client))
		defer m.Close()
		grpc := request(t, "x", "/")
		grpc.Header.Set("Content-Type", "application/grpc")
		testDialError(t, m, dead, grpc)
	}
}

func testDialError(t *testing.T, m *transport.Mesh, dead string, grpc *http.Request) {
	for _, tc := range []struct {
		ep  *lb.Endpoint
		req *http.Request
	}{
		{&lb.Endpoint{Addr: dead, TargetPort: "1"}, request(t, "x", "/")},
		{&lb.Endpoint{Addr: dead, TargetPort: "1"}, grpc},
		{&lb.Endpoint{Addr: "127.0.0.9:1", TargetPort: "1", TunnelAddr: dead}, request(t, "x", "/")},
	} {
		ep := tc.ep
		resp, err := m.RoundTrip(tc.req, ep)
		if resp != nil {
			resp.Body.Close()
		}
		var de *transport.DialError
		if !errors.As(err, &de) || de.Addr != dead || !strings.Contains(de.Error(), "connection refused") {
			t.Errorf("RoundTrip to %+v: error %v, want a DialError for %s", ep, err, dead)
		}
	}
}

// TestDirectGRPCIsH2C: gRPC needs HTTP/2 to the app, whatever the client
// spoke to the sidecar; everything else stays on HTTP/1.1.
func TestDirectGRPCIsH2C(t *testing.T) {
	tests := []struct {
		contentType string
		wantProto   string
	}{
		{"application/grpc", "HTTP/2.0"},
		{"application/grpc+proto", "HTTP/2.0"},
		{"application/json", "HTTP/1.1"},
		{"", "HTTP/1.1"},
	}
	for _, client := range h2Clients {
		for _, tc := range tests {
			t.Run(client+"/"+tc.contentType, func(t *testing.T) {
				testDirectGRPC(t, client, tc.contentType, tc.wantProto)
			})
		}
	}
}

func testDirectGRPC(t *testing.T, client, contentType, wantProto string) {
	_, addr := serve(t, 0)
	m := transport.New(transport.WithHTTP2Client(client))
	defer m.Close()
	req := request(t, "app", "/pkg.Svc/Call")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := m.RoundTrip(req, &lb.Endpoint{Addr: addr, TargetPort: "1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	got := resp.Header.Get("X-Proto") // before Close, which recycles the map
	resp.Body.Close()
	if got != wantProto {
		t.Errorf("app saw %s, want %s", got, wantProto)
	}
}

// TestNeedsEndpoint: a request carries its endpoint in the context only
// when the endpoint's connect timeout is not the default of every dialer
// the Mesh uses; with a tunnel whose dialers differ, or one it does not
// know, whenever the endpoint has a timeout of its own.
func TestNeedsEndpoint(t *testing.T) {
	def := transport.New()
	custom := transport.New(transport.WithConnectTimeout(3 * time.Second))
	mixed := transport.New(transport.WithTunnel(transport.NewMTLS(transport.NewDialer(2*time.Second), nil)))
	for _, tc := range []struct {
		name    string
		m       *transport.Mesh
		timeout time.Duration
		want    bool
	}{
		{"default mesh, no timeout", def, 0, false},
		{"default mesh, the default", def, mesh.DefaultConnectTimeout, false},
		{"default mesh, another", def, 2 * time.Second, true},
		{"custom default, its own", custom, 3 * time.Second, false},
		{"custom default, the mesh default", custom, mesh.DefaultConnectTimeout, true},
		{"tunnel dialer differs, no timeout", mixed, 0, false},
		{"tunnel dialer differs, the default", mixed, mesh.DefaultConnectTimeout, true},
	} {
		if got := tc.m.NeedsEndpoint(&lb.Endpoint{ConnectTimeout: tc.timeout}); got != tc.want {
			t.Errorf("%s: NeedsEndpoint = %v, want %v", tc.name, got, tc.want)
		}
	}
}
