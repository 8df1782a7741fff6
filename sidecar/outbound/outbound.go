package outbound

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/capture"
	authzfilter "github.com/weftmesh/weft/sidecar/filter/authz"
	"github.com/weftmesh/weft/sidecar/h1server"
	"github.com/weftmesh/weft/sidecar/internal/stackgrow"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// Tables gives the current routing table (an *atomic.Pointer[router.Table]).
type Tables interface {
	Load() *router.Table
}

// Handler routes and forwards the app's outbound requests.
type Handler struct {
	tables Tables
	fwd    *proxy.Forwarder
	obs    *telemetry.Observer
	authz  *authzfilter.Filter
	log    *slog.Logger
	// reg exports refused (egress.go).
	reg     prometheus.Registerer
	refused prometheus.Counter
	// picks recycles each request's picker context (attempt.go).
	picks sync.Pool
}

// WithAuthz sets the authorization filter (default: one whose denial
// counter is not exported).
func WithAuthz(f *authzfilter.Filter) Option { return func(h *Handler) { h.authz = f } }

// Option configures a Handler.
type Option func(*Handler)

// WithTelemetry makes the handler trace each try and measure and log
// every request.
func WithTelemetry(o *telemetry.Observer) Option { return func(h *Handler) { h.obs = o } }

var _ h1server.Recycler = (*Handler)(nil)

// NewHandler returns the outbound handler.
func NewHandler(tables Tables, t proxy.Transport, log *slog.Logger, opts ...Option) *Handler {
	h := &Handler{tables: tables, fwd: proxy.NewForwarder(t, log.With("listener", "outbound"))}
	for _, o := range opts {
		o(h)
	}
	if h.authz == nil {
		h.authz = authzfilter.New(log.With("listener", "outbound"))
	}
	h.log = log.With("listener", "outbound")
	h.refused = newRefusedCounter(h.reg)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r) }

// ServeRecycle implements h1server.Recycler: the request is given back
// when it was forwarded on transports that keep nothing of it
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
	var rq *telemetry.Request // nil without telemetry; its methods are nil-safe
	if h.obs != nil {
		w, r, rq = h.obs.Outbound(w, r)
		defer h.obs.Finish(rq)
	}
	tbl := h.tables.Load()
	if tbl == nil || tbl.Outbound == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "no outbound configuration yet")
		return false
	}
	// One chain for any port today; with capture the original destination
	// port selects it.
	chain := tbl.Outbound.Chain(0)
	if chain == nil || chain.Routes == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "no outbound routes yet")
		return false
	}
	if r.Host == "" {
		proxy.Error(w, http.StatusBadRequest, "request has no host")
		return false
	}
	if r.Method == http.MethodConnect && capture.IsRawTCP(r.Context()) {
		h.rawTCP(w, r, rq, tbl, chain.Routes) // capture.go
		return false
	}
	if r.Method == http.MethodConnect {
		// External hosts only (egress.go): the gateway authorizes.
		h.connect(w, r, rq, tbl, chain.Routes)
		return false
	}
	// The egress allowlist (NetworkPolicy) before routing.
	if tbl.Snapshot != nil && !h.authz.Outbound(w, r, authzfilter.ChainEngine(tbl.Snapshot.Listeners[mesh.ListenerOutbound], 0)) {
		return false
	}
	vh := chain.Routes.VirtualHost(r.Host)
	if vh == nil {
		var done bool
		if vh, done = h.byOriginalDst(w, r, tbl, chain.Routes); done {
			return false
		}
	}
	if vh == nil {
		h.notInRegistry(w, r.Host)
		return false
	}
	rt := vh.Route(r)
	if rt == nil {
		proxy.Error(w, http.StatusNotFound, "no route for %s%s", r.Host, r.URL.Path)
		return false
	}
	proxy.RemoveMeshHeaders(r.Header)
	if originalDst(tbl, rt.ClusterName) {
		h.passthrough(w, r)
		return false
	}
	return h.forward(w, r, rq, rt)
}

// NewServer returns the outbound HTTP server for h: HTTP/1.1 keep-alive on
// h1server, h2c handed to net/http's server; no read or write deadline on
// bodies (they stream).
func NewServer(h http.Handler, log *slog.Logger) *h1server.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return h1server.New(&http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	})
}
