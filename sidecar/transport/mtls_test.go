package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/sidecar/identity"
	"github.com/weftmesh/weft/sidecar/internal/testca"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/transport"
)

var (
	mtlsTD      = spiffeid.RequireTrustDomainFromString("cluster.local")
	mtlsClient  = spiffeid.RequireFromPath(mtlsTD, "/ns/shop/sa/frontend")
	mtlsServer  = spiffeid.RequireFromPath(mtlsTD, "/ns/shop/sa/payment")
	mtlsStrange = spiffeid.RequireFromPath(mtlsTD, "/ns/shop/sa/other")
)

// serveMTLS starts a peer's inbound: TLS with identity.ServerTLSConfig,
// HTTP/2 and HTTP/1.1, echoing the protocol of each request and the ALPN
// protocol of its connection.
func serveMTLS(t *testing.T, ca *testca.CA) (*countingListener, string) {
	t.Helper()
	svid := ca.SVID(t, mtlsServer.String(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	bundle := x509bundle.FromX509Authorities(mtlsTD, []*x509.Certificate{ca.Root})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv := &http.Server{Protocols: p, ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-ALPN", r.TLS.NegotiatedProtocol)
		_, _ = io.WriteString(w, r.URL.RequestURI())
	})}
	srv.TLSConfig = identity.ServerTLSConfig(svid, bundle, mtlsTD, nil)
	go func() { _ = srv.ServeTLS(cl, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return cl, ln.Addr().String()
}

func newMTLS(t *testing.T, ca *testca.CA, opts ...transport.MTLSOption) *transport.Mesh {
	t.Helper()
	svid := ca.SVID(t, mtlsClient.String(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	bundle := x509bundle.FromX509Authorities(mtlsTD, []*x509.Certificate{ca.Root})
	tun := transport.NewMTLS(nil, func(peerIDs []string, alpn string) (*tls.Config, error) {
		ids := make([]spiffeid.ID, 0, len(peerIDs))
		for _, p := range peerIDs {
			id, err := spiffeid.FromString(p)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return identity.ClientTLSConfigALPN(svid, bundle, ids, alpn, nil), nil
	}, opts...)
	m := transport.New(transport.WithTunnel(tun))
	t.Cleanup(m.CloseIdleConnections)
	return m
}

// TestMTLSPools checks which requests take the HTTP/1.1 keep-alive pool
// and which the HTTP/2 connection, and that each pool reuses its
// connections.
func TestMTLSPools(t *testing.T) {
	ca := testca.New(t, "root", time.Hour)
	grpcReq := func(r *http.Request) { r.Header.Set("Content-Type", "application/grpc+proto") }
	h2Req := func(r *http.Request) { r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0 }
	// h2Body is an HTTP/2 POST whose body has length n (-1: a stream of
	// unknown length, as an HTTP/2 client sends without content-length).
	h2Body := func(n int64) func(*http.Request) {
		return func(r *http.Request) {
			h2Req(r)
			r.Method = http.MethodPost
			r.Body = io.NopCloser(strings.NewReader("abc"))
			r.ContentLength = n
		}
	}
	tests := []struct {
		name      string
		opts      []transport.MTLSOption
		tweak     func(*http.Request)
		wantProto string
		wantALPN  string
	}{
		{name: "HTTP/1.1 request over the HTTP/1.1 pool", wantProto: "HTTP/1.1", wantALPN: "http/1.1"},
		{name: "HTTP/2 request without a body over the HTTP/1.1 pool", tweak: h2Req, wantProto: "HTTP/1.1", wantALPN: "http/1.1"},
		{name: "HTTP/2 request with a body of known length over the HTTP/1.1 pool", tweak: h2Body(3), wantProto: "HTTP/1.1", wantALPN: "http/1.1"},
		{name: "HTTP/2 request with a streamed body over HTTP/2", tweak: h2Body(-1), wantProto: "HTTP/2.0", wantALPN: "h2"},
		{name: "gRPC from an HTTP/1.1 client over HTTP/2", tweak: grpcReq, wantProto: "HTTP/2.0", wantALPN: "h2"},
		{name: "HTTP/1.1 pool off", opts: []transport.MTLSOption{transport.WithHTTP1Pool(false)}, wantProto: "HTTP/2.0", wantALPN: "h2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, addr := serveMTLS(t, ca)
			m := newMTLS(t, ca, tc.opts...)
			ep := &lb.Endpoint{
				Addr: "127.0.0.9:8080", TargetPort: "8080", TunnelAddr: addr,
				MTLS: &lb.MTLS{PeerIDs: []string{mtlsServer.String()}, Key: mtlsServer.String()},
			}
			const n = 5
			for i := range n {
				req := request(t, "payment:8080", "/x")
				if tc.tweak != nil {
					tc.tweak(req)
				}
				resp, err := m.RoundTrip(req, ep)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				// Before Close: the HTTP/1.1 pool recycles the map then.
				proto, alpn := resp.Header.Get("X-Proto"), resp.Header.Get("X-ALPN")
				resp.Body.Close()
				if got := proto; got != tc.wantProto {
					t.Errorf("request %d: peer saw %s, want %s", i, got, tc.wantProto)
				}
				if got := alpn; got != tc.wantALPN {
					t.Errorf("request %d: ALPN %q, want %q", i, got, tc.wantALPN)
				}
				if string(body) != "/x" {
					t.Errorf("request %d: body %q", i, body)
				}
			}
			if got := cl.n.Load(); got != 1 {
				t.Errorf("%d sequential requests opened %d connections, want 1 (kept alive)", n, got)
			}
		})
	}
}

// TestMTLSPoolRefusesWrongPeer: the HTTP/1.1 pool checks the peer's
// SPIFFE ID like the HTTP/2 one, and a refusal is a DialError.
func TestMTLSPoolRefusesWrongPeer(t *testing.T) {
	ca := testca.New(t, "root", time.Hour)
	_, addr := serveMTLS(t, ca)
	m := newMTLS(t, ca)
	ep := &lb.Endpoint{
		Addr: "127.0.0.9:8080", TargetPort: "8080", TunnelAddr: addr,
		MTLS: &lb.MTLS{PeerIDs: []string{mtlsStrange.String()}, Key: mtlsStrange.String()},
	}
	for _, h2 := range []bool{false, true} {
		req := request(t, "payment:8080", "/x")
		if h2 {
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		}
		resp, err := m.RoundTrip(req, ep)
		if resp != nil {
			resp.Body.Close()
		}
		var de *transport.DialError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "unexpected ID") {
			t.Errorf("h2=%v: error %v, want a DialError refusing the peer's ID", h2, err)
		}
	}
}
