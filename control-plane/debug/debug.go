package debug

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/control-plane/xds"
)

// XDS is what the debug server reads from the xds server.
type XDS interface {
	Ready() bool
	Proxies() []xds.ProxyStatus
	ConfigDump(id string) (*xds.ConfigDump, error)
}

var _ XDS = (*xds.Server)(nil)

// Counters are extra metrics the daemon keeps.
type Counters interface {
	RegistryErrors() uint64
}

// Option adds an optional part to the debug server.
type Option func(*handler)

// WithCertificates serves GET /debug/certs from certs.
func WithCertificates(certs func() []xds.CertStatus) Option {
	return func(h *handler) { h.certs = certs }
}

// RootRotator runs one root-rotation step ("add", "activate", "remove");
// errors wrapping ErrRefused are the operator's (HTTP 409).
type RootRotator func(ctx context.Context, step string, force bool) (any, error)

// WithRootRotation serves POST /debug/ca/rotate-root?step=<step>[&force=true]
// to loopback clients only.
func WithRootRotation(r RootRotator, refused error) Option {
	return func(h *handler) { h.rotate, h.refused = r, refused }
}

// WithGatherer serves GET /metrics from g, the daemon's registry (with
// NewMetrics registered on it). Without it the handler registers
// NewMetrics on a registry of its own.
func WithGatherer(g prometheus.Gatherer) Option {
	return func(h *handler) { h.gatherer = g }
}

// WithMetrics appends more Prometheus text to GET /metrics.
func WithMetrics(write func(io.Writer)) Option {
	return func(h *handler) { h.extraMetrics = write }
}

// NewHandler returns the debug server's handler.
func NewHandler(x XDS, c Counters, log *slog.Logger, opts ...Option) http.Handler {
	h := &handler{x: x, c: c, log: log}
	for _, o := range opts {
		o(h)
	}
	if h.gatherer == nil {
		reg := prometheus.NewRegistry()
		if _, err := NewMetrics(reg, ConnectedOf(x), c); err != nil {
			log.Error("debug: metrics", "err", err)
		}
		h.gatherer = reg
	}
	mux := http.NewServeMux()
	// Profiles, for loopback clients only.
	mux.Handle("/debug/pprof/", loopbackOnly(log, http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/cmdline", loopbackOnly(log, http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("/debug/pprof/profile", loopbackOnly(log, http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/symbol", loopbackOnly(log, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("/debug/pprof/trace", loopbackOnly(log, http.HandlerFunc(pprof.Trace)))
	if h.certs != nil {
		mux.HandleFunc("GET /debug/certs", h.certificates)
	}
	if h.rotate != nil {
		mux.HandleFunc("POST /debug/ca/rotate-root", h.rotateRoot)
	}
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /debug/proxies", h.proxies)
	mux.HandleFunc("GET /debug/config_dump", h.configDump)
	mux.HandleFunc("GET /metrics", h.metrics)
	return mux
}

type handler struct {
	x   XDS
	c   Counters
	log *slog.Logger

	certs        func() []xds.CertStatus
	rotate       RootRotator
	refused      error
	extraMetrics func(io.Writer)
	gatherer     prometheus.Gatherer
}

// loopbackOnly refuses clients that are not on loopback (403).
func loopbackOnly(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
			log.Warn("debug: refused: not a loopback client", "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, "served to loopback clients only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) certificates(w http.ResponseWriter, _ *http.Request) {
	h.json(w, h.certs())
}

func (h *handler) rotateRoot(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
		h.log.Warn("debug: root rotation refused: not a loopback client", "remote", r.RemoteAddr)
		http.Error(w, "root rotation is served to loopback clients only", http.StatusForbidden)
		return
	}
	step := r.URL.Query().Get("step")
	res, err := h.rotate(r.Context(), step, r.URL.Query().Get("force") == "true")
	switch {
	case err != nil && h.refused != nil && errors.Is(err, h.refused):
		http.Error(w, err.Error(), http.StatusConflict)
		return
	case err != nil:
		h.log.Error("debug: root rotation failed", "step", step, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.json(w, res)
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !h.x.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "no registry state yet")
		return
	}
	_, _ = fmt.Fprintln(w, "ok")
}

func (h *handler) proxies(w http.ResponseWriter, _ *http.Request) {
	h.json(w, h.x.Proxies())
}

func (h *handler) configDump(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("proxy")
	if id == "" {
		http.Error(w, "proxy=<node id> is required", http.StatusBadRequest)
		return
	}
	d, err := h.x.ConfigDump(id)
	switch {
	case errors.Is(err, xds.ErrUnknownProxy):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.json(w, d)
}

func (h *handler) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := writeGathered(w, h.gatherer); err != nil {
		h.log.Error("debug: metrics", "err", err)
	}
	if h.extraMetrics != nil {
		h.extraMetrics(w)
	}
}

func (h *handler) json(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("debug: encode", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
