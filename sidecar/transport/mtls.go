package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/sidecar/h1client"
	"github.com/weftmesh/weft/sidecar/lb"
)

// TLSConfigFunc returns the client TLS config that authorizes exactly
// peerIDs and offers (and requires) the one ALPN protocol alpn, "h2" or
// "http/1.1" (identity.ClientTLSConfigALPN over the sidecar's Manager). The
// config must read the certificate at each handshake, so a rotation applies
// to new connections and never closes live ones.
type TLSConfigFunc func(peerIDs []string, alpn string) (*tls.Config, error)

// ALPN protocol names of the two pools.
const (
	alpnH2     = "h2"
	alpnHTTP11 = "http/1.1"
)

// MTLS is the tunnel of the identity issue: mutual TLS 1.3 to the peer's
// inbound listener, for endpoints whose cluster has an UpstreamTlsContext
// (Endpoint.MTLS); endpoints without one go over the h2c tunnel, as before
// (tests, permissive migration).
//
// Two pools per set of allowed peer IDs (a cluster's SAN list; equal lists
// share them):
//
//   - HTTP/1.1 keep-alive connections (ALPN http/1.1) for plain requests,
//     the common case: one request per connection at a time, as nginx and
//     Envoy do between proxies, through h1client (no goroutines per
//     connection) and the peer's h1server. Requests that arrived as HTTP/2
//     take it too when their body is empty or of known length and they
//     carry no trailers (nginx's
//     h2-to-HTTP/1.1 hop): on the peer, net/http's HTTP/2 server runs a
//     goroutine per stream, a frame scheduler, and a flush (an extra
//     goroutine and write) per response frame, which made the server
//     sidecar use 1.7 times the CPU per request (BENCHMARKS.md, "HTTP/2
//     and gRPC through the pair"). An HTTP/1.x request's trailers go as
//     chunked trailers.
//   - HTTP/2 (ALPN h2), one multiplexed connection per peer address behind
//     the same cold-start gate as H2C, for what needs it: gRPC (trailers
//     and streams end to end, whatever version the client used), HTTP/2
//     requests whose body is a stream of unknown length (the client may
//     send while it reads, full duplex), and CONNECT streams.
//
// A TLS handshake failure (the peer's identity is not in the list, its
// certificate does not verify) is a *DialError on both: the request never
// reached the peer.
type MTLS struct {
	h2c    *H2C
	dialer *Dialer
	config TLSConfigFunc
	byKey  sync.Map // lb.MTLS.Key -> *mtlsPool
	// maxIdlePerHost bounds the idle HTTP/1.1 connections kept per peer.
	maxIdlePerHost int
	// http1 enables the HTTP/1.1 pool (default true).
	http1 bool
	// netHTTP2: net/http's transport carries the HTTP/2 pool, not
	// h2client.
	netHTTP2 bool
	// h2WriteTimeout is h2client's write timeout (0: its default).
	h2WriteTimeout time.Duration
}

// MTLSOption configures an MTLS tunnel.
type MTLSOption func(*MTLS)

// WithHTTP1Pool turns the HTTP/1.1 pool on (the default) or off (every
// request over HTTP/2, as before it existed: benchmarks compare the two).
func WithHTTP1Pool(on bool) MTLSOption { return func(m *MTLS) { m.http1 = on } }

// WithMTLSHTTP2Client picks what carries the HTTP/2 pool (and the h2c
// tunnel of endpoints without mTLS): HTTP2ClientWeft (h2client, the
// default) or HTTP2ClientNetHTTP.
func WithMTLSHTTP2Client(name string) MTLSOption {
	return func(m *MTLS) { m.netHTTP2 = name == HTTP2ClientNetHTTP }
}

// WithMTLSHTTP2WriteTimeout bounds each socket write of the HTTP/2 pool's
// connections (and the h2c tunnel's) when h2client carries them
// (h2client.WithWriteTimeout: 0, its default; negative, none).
func WithMTLSHTTP2WriteTimeout(d time.Duration) MTLSOption {
	return func(m *MTLS) { m.h2WriteTimeout = d }
}

var _ Tunnel = (*MTLS)(nil)

type mtlsPool struct {
	once sync.Once
	h2   *H2C
	h1   *h1client.Client
	err  error
}

// NewMTLS returns the mTLS tunnel; d dials (nil: mesh default timeout).
func NewMTLS(d *Dialer, config TLSConfigFunc, opts ...MTLSOption) *MTLS {
	if d == nil {
		d = NewDialer(0)
	}
	m := &MTLS{dialer: d, config: config, maxIdlePerHost: 256, http1: true}
	for _, o := range opts {
		o(m)
	}
	m.h2c = newH2C(d, m.netHTTP2, m.h2WriteTimeout)
	return m
}

// useHTTP1 reports whether req goes over the HTTP/1.1 pool: it is not a
// CONNECT, not gRPC (whose trailers and streams stay on HTTP/2, whatever
// version the client used), and either arrived as HTTP/1.x or, having
// arrived as HTTP/2, has no body or one of known length and no
// trailers. An HTTP/2 request whose body is a stream of unknown length (a
// client that may send while it reads: full duplex) or that carries
// trailers keeps HTTP/2 on the hop: HTTP/1.1 sends trailers only after a
// chunked body, and a body of known length goes with Content-Length.
func useHTTP1(req *http.Request) bool {
	if req.Method == http.MethodConnect || IsGRPC(req) {
		return false
	}
	return req.ProtoMajor == 1 || req.ContentLength >= 0 && len(req.Trailer) == 0
}

// releases reports whether RoundTrip sends req to ep on the HTTP/1.1
// pool (Mesh.ReleasesRequest).
func (m *MTLS) releases(req *http.Request, ep *lb.Endpoint) bool {
	return ep.MTLS != nil && m.http1 && useHTTP1(req)
}

// RoundTrip implements Tunnel.
func (m *MTLS) RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	if ep == nil || ep.MTLS == nil {
		return m.h2c.RoundTrip(req, ep)
	}
	pv, ok := m.byKey.Load(ep.MTLS.Key)
	if !ok {
		pv, _ = m.byKey.LoadOrStore(ep.MTLS.Key, &mtlsPool{})
	}
	p := pv.(*mtlsPool)
	p.once.Do(func() {
		cfg2, err := m.config(ep.MTLS.PeerIDs, alpnH2)
		if err != nil {
			p.err = err
			return
		}
		cfg1, err := m.config(ep.MTLS.PeerIDs, alpnHTTP11)
		if err != nil {
			p.err = err
			return
		}
		p.h2 = newTLSTunnel(m.dialer, cfg2, m.netHTTP2, m.h2WriteTimeout)
		p.h1 = newTLSPool(m.dialer, cfg1, m.maxIdlePerHost)
	})
	if p.err != nil {
		return nil, &DialError{Addr: req.URL.Host, Err: p.err}
	}
	req.URL.Scheme = "https"
	if m.http1 && useHTTP1(req) {
		return p.h1.RoundTrip(req)
	}
	return p.h2.RoundTrip(req, ep)
}

// close closes the HTTP/2 pools' h2client connections (Mesh.Close).
func (m *MTLS) close() {
	m.h2c.close()
	m.byKey.Range(func(_, v any) bool {
		if p := v.(*mtlsPool); p.h2 != nil {
			p.h2.close()
		}
		return true
	})
}

// CloseIdleConnections implements Tunnel.
func (m *MTLS) CloseIdleConnections() {
	m.h2c.CloseIdleConnections()
	m.byKey.Range(func(_, v any) bool {
		if p := v.(*mtlsPool); p.h2 != nil {
			p.h2.CloseIdleConnections()
			p.h1.CloseIdleConnections()
		}
		return true
	})
}

// newTLSTunnel is an H2C whose transport speaks HTTP/2 over TLS: the dial
// and the handshake are one step, so a refused handshake is a DialError.
func newTLSTunnel(d *Dialer, cfg *tls.Config, netHTTP bool, writeTimeout time.Duration) *H2C {
	if !netHTTP {
		return &H2C{dialer: d, own: newTunnelClient(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialTLS(ctx, d, cfg, "tcp", addr)
		}, writeTimeout)}
	}
	h := newH2C(d, true, 0)
	h.t.Protocols = new(http.Protocols)
	h.t.Protocols.SetHTTP2(true)
	h.t.DialContext = nil
	h.t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if g, ok := h.peers.Load(addr); ok {
			g.(*peerGate).warm.Store(false)
		}
		return dialTLS(ctx, d, cfg, network, addr)
	}
	return h
}

// newTLSPool is the HTTP/1.1 keep-alive pool over mTLS: up to maxIdle idle
// connections per peer, each carrying one request at a time, on the
// caller's goroutine (h1client).
func newTLSPool(d *Dialer, cfg *tls.Config, maxIdle int) *h1client.Client {
	return h1client.New(func(ctx context.Context, addr string) (net.Conn, error) {
		return dialTLS(ctx, d, cfg, "tcp", addr)
	},
		h1client.WithMaxIdlePerHost(maxIdle),
		h1client.WithIdleTimeout(90*time.Second),
		h1client.WithSpareIdleTimeout(spareIdleTimeout),
		h1client.WithMaxResponseHeaderBytes(maxResponseHeaderBytes),
		h1client.WithHeaderRecycling())
}

// dialTLS dials addr with d and completes the mTLS handshake with cfg
// within the endpoint's connect timeout (plus a second); a failed
// handshake is a *DialError.
func dialTLS(ctx context.Context, d *Dialer, cfg *tls.Config, network, addr string) (net.Conn, error) {
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	timeout := d.timeout
	if ep := EndpointFromContext(ctx); ep != nil && ep.ConnectTimeout > 0 {
		timeout = ep.ConnectTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, &DialError{Addr: addr, Err: err}
	}
	return c, nil
}
