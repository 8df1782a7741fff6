package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/h1client"
	"github.com/weftmesh/weft/sidecar/h2client"
	"github.com/weftmesh/weft/sidecar/internal/rawtcp"
	"github.com/weftmesh/weft/sidecar/lb"
)

// Tunnel sends requests to a peer sidecar's inbound listener. It receives the
// request with its URL already pointing at ep.TunnelAddr and the target port
// header set.
type Tunnel interface {
	RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error)
	CloseIdleConnections()
}

// DialError says the transport could not connect to an upstream: the request
// was not sent, so it is always safe to retry elsewhere.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "transport: connect to " + e.Addr + ": " + e.Err.Error() }

func (e *DialError) Unwrap() error { return e.Err }

// ErrNotProcessed is wrapped by the errors of HTTP/2 requests the peer
// did not process: above the last stream id of its GOAWAY, or refused
// with REFUSED_STREAM (h2client; net/http's transport retries those
// itself when it can, else reports REFUSED_STREAM). Like a DialError,
// such a request may be sent again elsewhere.
var ErrNotProcessed = h2client.ErrNotProcessed

// HTTP/2 clients of the HTTP/2 hops (WithHTTP2Client,
// WithMTLSHTTP2Client).
const (
	// HTTP2ClientWeft is package h2client (the default).
	HTTP2ClientWeft = "weft"
	// HTTP2ClientNetHTTP is net/http's HTTP/2 transport.
	HTTP2ClientNetHTTP = "net/http"
)

// h2Transport carries the requests of one HTTP/2 hop: an h2client.Client
// or net/http's Transport.
type h2Transport interface {
	RoundTrip(req *http.Request) (*http.Response, error)
	CloseIdleConnections()
}

type endpointKey struct{}

// WithEndpoint returns a context that carries ep to the transport's dialers,
// which read its connect timeout from it. A request needs it only when
// that timeout is not its transport's default (Mesh.NeedsEndpoint): the
// mTLS tunnel takes the peer identity from the endpoint RoundTrip gets.
func WithEndpoint(ctx context.Context, ep *lb.Endpoint) context.Context {
	return context.WithValue(ctx, endpointKey{}, ep)
}

// EndpointFromContext returns the endpoint set by WithEndpoint, or nil.
func EndpointFromContext(ctx context.Context) *lb.Endpoint {
	ep, _ := ctx.Value(endpointKey{}).(*lb.Endpoint)
	return ep
}

// Option configures a Mesh.
type Option func(*options)

type options struct {
	netHTTP2        bool
	h2WriteTimeout  time.Duration
	connectTimeout  time.Duration
	tunnel          Tunnel
	maxIdlePerHost  int
	idleConnTimeout time.Duration
	source          netip.Addr
	netSocketIO     bool
}

// WithNetSocketIO(true) keeps the net package's reads and writes on the
// connections the transport dials, instead of sidecar/internal/rawtcp's
// raw system calls (the default): the fallback of the sidecar's
// --raw-socket-io=false.
func WithNetSocketIO(on bool) Option { return func(o *options) { o.netSocketIO = on } }

// WithSourceAddr makes dials to loopback destinations leave from ip when
// ip is itself a loopback address (local mode: each workload has its own
// 127.0.0.N, and peers' source-IP rules see it instead of 127.0.0.1).
func WithSourceAddr(ip netip.Addr) Option { return func(o *options) { o.source = ip } }

// WithHTTP2Client picks what carries the h2c tunnel's and direct gRPC's
// HTTP/2: HTTP2ClientWeft (package h2client, the default) or
// HTTP2ClientNetHTTP (net/http's transport). The mTLS tunnel has its own
// option (WithMTLSHTTP2Client).
func WithHTTP2Client(name string) Option {
	return func(o *options) { o.netHTTP2 = name == HTTP2ClientNetHTTP }
}

// WithHTTP2WriteTimeout bounds each socket write of the h2c tunnel's and
// direct gRPC's HTTP/2 connections when h2client carries them
// (h2client.WithWriteTimeout: 0, its default; negative, none). The mTLS
// tunnel has its own option (WithMTLSHTTP2WriteTimeout).
func WithHTTP2WriteTimeout(d time.Duration) Option {
	return func(o *options) { o.h2WriteTimeout = d }
}

// WithConnectTimeout sets the dial timeout used when an endpoint has none
// (default mesh.DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithTunnel replaces the h2c tunnel (the identity issue passes its mTLS one).
func WithTunnel(t Tunnel) Option { return func(o *options) { o.tunnel = t } }

// WithMaxIdleConnsPerHost bounds the idle HTTP/1.1 connections kept per
// direct upstream (default 256).
func WithMaxIdleConnsPerHost(n int) Option { return func(o *options) { o.maxIdlePerHost = n } }

// Mesh is the sidecar's transport: the tunnel for sidecar endpoints, pooled
// HTTP/1.1 for the rest (h2c with prior knowledge for gRPC, which needs
// HTTP/2).
type Mesh struct {
	tunnel Tunnel
	// direct carries HTTP/1.1 to direct endpoints (the app) on the
	// caller's goroutine.
	direct *h1client.Client
	// directH2 carries gRPC requests to direct endpoints (the app).
	directH2 h2Transport
	// connectTimeout is the default connect timeout of every dialer the
	// Mesh uses, 0 when they differ or are not known (NeedsEndpoint).
	connectTimeout time.Duration
}

// New returns a Mesh transport.
func New(opts ...Option) *Mesh {
	o := options{
		connectTimeout:  mesh.DefaultConnectTimeout,
		maxIdlePerHost:  256,
		idleConnTimeout: 90 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	d := NewDialer(o.connectTimeout)
	d.Source = o.source
	d.NetSocketIO = o.netSocketIO
	if o.tunnel == nil {
		o.tunnel = newH2C(d, o.netHTTP2, o.h2WriteTimeout)
	}
	direct := h1client.New(d.dialTCP,
		h1client.WithMaxIdlePerHost(o.maxIdlePerHost),
		h1client.WithIdleTimeout(o.idleConnTimeout),
		h1client.WithSpareIdleTimeout(spareIdleTimeout),
		h1client.WithMaxResponseHeaderBytes(maxResponseHeaderBytes),
		h1client.WithHeaderRecycling())
	var directH2 h2Transport
	if o.netHTTP2 {
		directH2 = &http.Transport{
			Proxy:              nil,
			DialContext:        d.DialContext,
			IdleConnTimeout:    o.idleConnTimeout,
			DisableCompression: true,
			Protocols:          protocols(false, true),
		}
	} else {
		directH2 = h2client.New(d.dialTCP,
			h2client.WithIdleTimeout(o.idleConnTimeout),
			h2client.WithMaxHeaderBytes(maxResponseHeaderBytes),
			h2client.WithWriteTimeout(o.h2WriteTimeout))
	}
	return &Mesh{tunnel: o.tunnel, direct: direct, directH2: directH2, connectTimeout: commonTimeout(d, o.tunnel)}
}

// commonTimeout returns d's default connect timeout when the tunnel's
// dialers share it, and 0 when they do not or the tunnel is not one of
// this package's.
func commonTimeout(d *Dialer, t Tunnel) time.Duration {
	var td *Dialer
	switch t := t.(type) {
	case *H2C:
		td = t.dialer
	case *MTLS:
		if t.dialer.timeout != t.h2c.dialer.timeout {
			return 0
		}
		td = t.dialer
	}
	if td == nil || td.timeout != d.timeout {
		return 0
	}
	return d.timeout
}

// NeedsEndpoint reports whether a request to ep must carry ep in its
// context (WithEndpoint) for the dialers: only when ep has a connect
// timeout of its own that is not the dialers' default. The forwarder
// skips the context layer otherwise (one allocation per request).
func (m *Mesh) NeedsEndpoint(ep *lb.Endpoint) bool {
	return ep.ConnectTimeout > 0 && ep.ConnectTimeout != m.connectTimeout
}

// IsGRPC reports whether req is a gRPC call (its Content-Type is
// application/grpc or application/grpc+<codec>): it needs HTTP/2 on every
// hop, whatever version the client spoke to the sidecar.
func IsGRPC(req *http.Request) bool {
	ct := req.Header["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}

// OwnConnection reports whether a request to ep holds a connection of its
// own while it is in flight — pooled HTTP/1.1: to a direct endpoint unless
// it is gRPC, and over the mTLS tunnel unless it is CONNECT, gRPC or an
// HTTP/2 request with a streamed body — rather than a stream on the one
// multiplexed HTTP/2 connection to the endpoint (the h2c or mTLS tunnel,
// direct gRPC). The outbound's max_connections accounting follows it.
func OwnConnection(req *http.Request, ep *lb.Endpoint) bool {
	if ep.TunnelAddr == "" {
		return !IsGRPC(req)
	}
	return ep.MTLS != nil && useHTTP1(req)
}

// ReleasesRequest reports whether RoundTrip keeps nothing of req (the
// request, its URL, its header map) once it returned an error, or a
// response whose body was then closed: req has no body and goes on an
// HTTP/1.1 pool (h1client writes it and reads the answer on the caller's
// goroutine; no body writer runs on). Requests on the HTTP/2 hops are
// not released: net/http's transport may still hold one after that (its
// stream's goroutine), and h2client's response points to its request
// (Response.Request), as net/http's. The proxy recycles its hop
// requests, and the server's request, by it.
func (m *Mesh) ReleasesRequest(req *http.Request, ep *lb.Endpoint) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if ep.TunnelAddr == "" {
		return !IsGRPC(req)
	}
	mt, ok := m.tunnel.(*MTLS)
	return ok && mt.releases(req, ep)
}

// RecycleResponse gives back a response of the HTTP/1.1 pools
// (h1client.Recycle) once the caller read and closed its body and is done
// with it; any other response is left to the garbage collector.
func (m *Mesh) RecycleResponse(resp *http.Response) { h1client.Recycle(resp) }

// RoundTrip sends req to ep. req.URL carries path and query only; RoundTrip
// sets scheme and host. req.Host is sent as the Host (:authority) header.
func (m *Mesh) RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	req.URL.Scheme = "http"
	if ep.TunnelAddr != "" {
		req.URL.Host = ep.TunnelAddr
		req.Header[headerTargetPort] = ep.TargetPortHeader()
		return m.tunnel.RoundTrip(req, ep)
	}
	req.URL.Host = ep.Addr
	if IsGRPC(req) {
		return m.directH2.RoundTrip(req)
	}
	return m.direct.RoundTrip(req)
}

// CloseIdleConnections closes idle connections of both hops.
func (m *Mesh) CloseIdleConnections() {
	m.tunnel.CloseIdleConnections()
	m.direct.CloseIdleConnections()
	m.directH2.CloseIdleConnections()
}

// Close closes every connection of the HTTP/2 hops that h2client
// carries (their streams fail) and waits for their goroutines, and the
// idle ones of the others; the Mesh is not used after.
func (m *Mesh) Close() {
	m.CloseIdleConnections()
	if c, ok := m.directH2.(*h2client.Client); ok {
		_ = c.Close()
	}
	if c, ok := m.tunnel.(interface{ close() }); ok {
		c.close()
	}
}

var headerTargetPort = http.CanonicalHeaderKey(mesh.HeaderTargetPort)

// maxResponseHeaderBytes bounds a response head on the HTTP/1.1 hops.
const maxResponseHeaderBytes = 1 << 20

// spareIdleTimeout is how long the HTTP/1.1 pools (direct, and the mTLS
// tunnel's) keep an idle connection other than an address's most
// recently used one (h1client.WithSpareIdleTimeout): a saturation run's
// 32 connections per peer, each with its TLS record buffers and, on the
// peer, its goroutine, shrink to what the load that follows uses within
// 10 s instead of staying for the 90 s idle timeout (BENCHMARKS.md, "Heap
// after a burst").
const spareIdleTimeout = 10 * time.Second

// H2C is the plaintext HTTP/2 tunnel: prior-knowledge HTTP/2 over TCP, one
// multiplexed connection per peer, through h2client (which dials once
// per peer at a time itself) or net/http's transport.
//
// net/http cannot know that a plaintext connection will speak HTTP/2 before
// it has dialled it, so a burst of requests to a peer without a connection
// would dial one connection each. A per-peer gate prevents that: while the
// peer is cold, the first request dials and the others wait until it has
// its connection, then share it.
type H2C struct {
	dialer *Dialer
	// own, when set, carries the requests (h2client); t otherwise.
	own   *h2client.Client
	t     *http.Transport
	peers sync.Map // tunnel address -> *peerGate
}

var _ Tunnel = (*H2C)(nil)

// peerGate is the cold-start gate of one peer.
type peerGate struct {
	warm atomic.Bool
	mu   sync.Mutex
	// leader is closed when the leading request has its connection.
	leader chan struct{}
}

// Keep-alive and idle limits of the tunnel's HTTP/2 connections: a ping
// after 30 s of silence, and the connection is dropped when the peer does
// not answer within 10 s (a dead peer is noticed even when no request is
// in flight); an idle connection is closed after 5 minutes.
const (
	tunnelSendPing    = 30 * time.Second
	tunnelPingTimeout = 10 * time.Second
	tunnelIdleTimeout = 5 * time.Minute
)

// NewH2C returns an h2c tunnel that dials with d (nil: a Dialer with
// mesh.DefaultConnectTimeout), through h2client.
func NewH2C(d *Dialer) *H2C { return newH2C(d, false, 0) }

// newH2C is NewH2C through net/http's transport when netHTTP;
// writeTimeout is h2client's otherwise (h2client.WithWriteTimeout).
func newH2C(d *Dialer, netHTTP bool, writeTimeout time.Duration) *H2C {
	if d == nil {
		d = NewDialer(mesh.DefaultConnectTimeout)
	}
	if !netHTTP {
		return &H2C{dialer: d, own: newTunnelClient(d.dialTCP, writeTimeout)}
	}
	h := &H2C{dialer: d}
	h.t = &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// A dial to a warm peer means its connection is gone: later
			// requests wait for this one's replacement.
			if g, ok := h.peers.Load(addr); ok {
				g.(*peerGate).warm.Store(false)
			}
			return d.DialContext(ctx, network, addr)
		},
		DisableCompression: true,
		IdleConnTimeout:    tunnelIdleTimeout,
		Protocols:          protocols(false, true),
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: tunnelSendPing,
			PingTimeout:     tunnelPingTimeout,
		},
	}
	return h
}

// newTunnelClient is the h2client of a tunnel that dials with dial.
func newTunnelClient(dial h2client.DialFunc, writeTimeout time.Duration) *h2client.Client {
	return h2client.New(dial,
		h2client.WithPing(tunnelSendPing, tunnelPingTimeout),
		h2client.WithIdleTimeout(tunnelIdleTimeout),
		h2client.WithMaxHeaderBytes(maxResponseHeaderBytes),
		h2client.WithWriteTimeout(writeTimeout))
}

// RoundTrip implements Tunnel.
func (h *H2C) RoundTrip(req *http.Request, _ *lb.Endpoint) (*http.Response, error) {
	if h.own != nil {
		return h.own.RoundTrip(req)
	}
	addr := req.URL.Host
	gv, ok := h.peers.Load(addr)
	if !ok {
		gv, _ = h.peers.LoadOrStore(addr, &peerGate{})
	}
	g := gv.(*peerGate)
	if g.warm.Load() {
		return h.t.RoundTrip(req)
	}
	g.mu.Lock()
	switch {
	case g.warm.Load():
		g.mu.Unlock()
	case g.leader != nil:
		wait := g.leader
		g.mu.Unlock()
		select {
		case <-wait:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	default:
		done := make(chan struct{})
		g.leader = done
		g.mu.Unlock()
		var once sync.Once
		release := func(connected bool) {
			once.Do(func() {
				g.mu.Lock()
				if connected {
					g.warm.Store(true)
				}
				g.leader = nil
				g.mu.Unlock()
				close(done)
			})
		}
		trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { release(true) }}
		resp, err := h.t.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		release(err == nil)
		return resp, err
	}
	return h.t.RoundTrip(req)
}

// CloseIdleConnections implements Tunnel.
func (h *H2C) CloseIdleConnections() {
	if h.own != nil {
		h.own.CloseIdleConnections()
		return
	}
	h.t.CloseIdleConnections()
}

// close closes h2client's connections and waits for their goroutines.
func (h *H2C) close() {
	if h.own != nil {
		_ = h.own.Close()
	}
}

func protocols(http1, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(http1)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

// Dialer dials IP literals with a per-endpoint timeout and wraps failures in
// a DialError. Tunnel implementations use it so that connect failures look
// the same on every hop.
type Dialer struct {
	timeout time.Duration
	// Source, when a loopback address, is the local address of dials to
	// loopback destinations (see WithSourceAddr).
	Source netip.Addr
	// NetSocketIO leaves dialed connections as the net package made them,
	// instead of *rawtcp.Conn (see WithNetSocketIO).
	NetSocketIO bool
}

// NewDialer returns a Dialer whose timeout, when the endpoint in the context
// has none, is defaultTimeout.
func NewDialer(defaultTimeout time.Duration) *Dialer {
	if defaultTimeout <= 0 {
		defaultTimeout = mesh.DefaultConnectTimeout
	}
	return &Dialer{timeout: defaultTimeout}
}

// dialTCP is DialContext over TCP, as an h1client.DialFunc.
func (d *Dialer) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return d.DialContext(ctx, "tcp", addr)
}

// DialContext dials addr, bounding the dial by the endpoint's connect timeout
// (from the request context) or the default.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.timeout
	if ep := EndpointFromContext(ctx); ep != nil && ep.ConnectTimeout > 0 {
		timeout = ep.ConnectTimeout
	}
	nd := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if d.Source.IsLoopback() {
		if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().IsLoopback() && ap.Addr().Is4() == d.Source.Is4() {
			nd.LocalAddr = &net.TCPAddr{IP: d.Source.AsSlice()}
		}
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		// "dial tcp 1.2.3.4:5: connect: connection refused" reads as
		// "connect: connection refused": the address is in the DialError.
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return nil, &DialError{Addr: addr, Err: err}
	}
	if d.NetSocketIO {
		return c, nil
	}
	// Raw socket reads and writes (rawtcp): no sysmon wake per request.
	return rawtcp.Wrap(c), nil
}
