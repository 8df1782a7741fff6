package debug

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

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

// NewHandler returns the debug server's handler.
func NewHandler(x XDS, c Counters, log *slog.Logger) http.Handler {
	h := &handler{x: x, c: c, log: log}
	mux := http.NewServeMux()
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
	_, _ = fmt.Fprintf(w, "# HELP weft_xds_connected_proxies Proxies with an open ADS stream.\n# TYPE weft_xds_connected_proxies gauge\nweft_xds_connected_proxies %d\n", len(h.x.Proxies()))
	if h.c != nil {
		_, _ = fmt.Fprintf(w, "# HELP weft_registry_errors_total Registry contents rejected.\n# TYPE weft_registry_errors_total counter\nweft_registry_errors_total %d\n", h.c.RegistryErrors())
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
