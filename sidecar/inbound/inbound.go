package inbound

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/capture"
	authzfilter "github.com/weftmesh/weft/sidecar/filter/authz"
	"github.com/weftmesh/weft/sidecar/h1server"
	"github.com/weftmesh/weft/sidecar/internal/stackgrow"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Tables gives the current routing table (an *atomic.Pointer[router.Table]).
type Tables interface {
	Load() *router.Table
}

// Handler serves requests arriving from peer sidecars.
type Handler struct {
	tables Tables
	fwd    *proxy.Forwarder
	log    *slog.Logger
	obs    *telemetry.Observer
	authz  *authzfilter.Filter
}

// WithAuthz sets the authorization filter (default: one whose denial
// counter is not exported).
func WithAuthz(f *authzfilter.Filter) Option { return func(h *Handler) { h.authz = f } }

// Option configures a Handler.
type Option func(*Handler)

// WithTelemetry makes the handler trace, measure and log every request.
func WithTelemetry(o *telemetry.Observer) Option { return func(h *Handler) { h.obs = o } }

var headerPeerIdentity = http.CanonicalHeaderKey(mesh.HeaderPeerIdentity)

var _ h1server.Recycler = (*Handler)(nil)

// NewHandler returns the inbound handler; t should dial the app directly.
func NewHandler(tables Tables, t proxy.Transport, log *slog.Logger, opts ...Option) *Handler {
	log = log.With("listener", "inbound")
	h := &Handler{tables: tables, fwd: proxy.NewForwarder(t, log), log: log}
	for _, o := range opts {
		o(h)
	}
	if h.authz == nil {
		h.authz = authzfilter.New(log)
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// ServeRecycle implements h1server.Recycler: the request is given back
// when it went to the app on a transport that keeps nothing of it
// (proxy.Forwarder.Releases); every other path keeps it.
func (h *Handler) ServeRecycle(w http.ResponseWriter, r *http.Request) bool { return h.serve(w, r) }

// serve handles the request; released: nothing holds r once it returned
// (ServeRecycle).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (released bool) {
	if r.ProtoMajor == 2 {
		// A new goroutine per HTTP/2 stream: grow its stack once, here,
		// not by doubling deep in the path (package stackgrow).
		stackgrow.Grow()
	}
	peer := PeerFromContext(r.Context())
	var rq *telemetry.Request // nil without telemetry; its methods are nil-safe
	if h.obs != nil {
		w, r, rq = h.obs.Inbound(w, r)
		defer h.obs.Finish(rq)
		var id string
		if peer != nil && len(peer.Header) > 0 {
			id = peer.Header[0]
		}
		rq.NotePeer(id)
	}
	tbl := h.tables.Load()
	if tbl == nil || tbl.Inbound == nil {
		// The app never saw it: the caller's sidecar may retry it on another
		// endpoint whatever the method (a sidecar just started, or one whose
		// workload left the registry while its peers still route to it).
		w.Header().Set(mesh.HeaderAppUnreachable, "1")
		proxy.Error(w, http.StatusServiceUnavailable, "no inbound configuration yet")
		return false
	}
	v, ok := proxy.TargetPort(r.Header)
	if !ok {
		// Captured (iptables): the original destination names the port.
		dst, captured := capture.FromContext(r.Context())
		if !captured {
			proxy.Error(w, http.StatusMisdirectedRequest, "request has no %s header", mesh.HeaderTargetPort)
			return false
		}
		v = strconv.Itoa(int(dst.Port()))
	}
	port, err := strconv.ParseUint(v, 10, 16)
	if err != nil || port == 0 {
		proxy.Error(w, http.StatusBadRequest, "bad %s %q", mesh.HeaderTargetPort, v)
		return false
	}
	if r.Method == http.MethodConnect && r.URL.Path == "" {
		r.URL.Path = "/" // raw TCP from a peer (tcp.go): route and authorize as "/"
	}
	chain := tbl.Inbound.Chain(uint32(port))
	if chain == nil {
		proxy.Error(w, http.StatusMisdirectedRequest, "port %d is not served here (no inbound filter chain)", port)
		return false
	}
	mtls := peer != nil && !peer.ID.IsZero()
	if !mtls && !chain.Plaintext {
		addr := r.RemoteAddr
		h.log.Warn("refused plaintext request to a STRICT port", "peer", addr, "port", port, "chain", chain.Name)
		proxy.Error(w, http.StatusForbidden, "port %d accepts mTLS only (STRICT); plaintext refused", port)
		return false
	}
	// Authorization before routing: the chain's RBAC filters, by the
	// verified identity only (fails closed without a compiled engine).
	var principal string
	if mtls {
		principal = peer.ID.String()
	}
	var lds *xdsclient.Listener
	if tbl.Snapshot != nil {
		lds = tbl.Snapshot.Listeners[mesh.ListenerInbound]
	}
	if !h.authz.Inbound(w, r, authzfilter.ChainEngine(lds, uint32(port)), principal, uint32(port)) {
		return false
	}
	if chain.Routes == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "no inbound routes for port %d yet", port)
		return false
	}
	vh := chain.Routes.VirtualHost(r.Host)
	var rt *router.Route
	if vh != nil {
		rt = vh.Route(r)
	}
	if rt == nil {
		proxy.Error(w, http.StatusNotFound, "no inbound route for %s%s on port %d", r.Host, r.URL.Path, port)
		return false
	}
	if rt.Cluster == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "cluster %s not found", rt.ClusterName)
		return false
	}
	ep := rt.Cluster.Picker.Pick()
	if ep == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "no app endpoint for %s", rt.ClusterName)
		return false
	}
	proxy.RemoveMeshHeaders(r.Header)
	if h.obs != nil {
		var id string
		if mtls {
			id = peer.ID.String()
		}
		rq.Note(rt.Name, rt.ClusterName, ep, id)
		rq.NoteService(rt.Cluster.Service(r.Host))
	}
	if mtls {
		// From the verified certificate only; any client-sent value went
		// with the mesh headers.
		r.Header[headerPeerIdentity] = peer.Header
	}
	if r.Method == http.MethodConnect {
		h.connectApp(w, r, ep, rq)
		return false
	}
	return h.fwd.ForwardToApp(w, r, ep, rt.ClusterName)
}

// NewServer returns the inbound server for h: HTTP/1.1 (over mTLS or
// plaintext) on h1server, HTTP/2 over mTLS (the tunnel; serve it on a
// Listener, which completes the handshakes) and h2c (the plaintext tunnel)
// handed to net/http's server as NewHTTPServer configures it.
func NewServer(h http.Handler, log *slog.Logger) *h1server.Server {
	return h1server.New(NewHTTPServer(h, log))
}

// NewHTTPServer returns net/http's server for h, configured as the
// inbound's (the egress gateway serves with it).
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	return &http.Server{
		Handler:           h,
		ConnContext:       ConnContext,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1000,
			SendPingTimeout:      30 * time.Second,
			PingTimeout:          10 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
