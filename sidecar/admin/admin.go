package admin

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/xdsproto"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Source gives the accepted configuration and the xDS status (the
// *xdsclient.Client).
type Source interface {
	Snapshot() *xdsclient.Snapshot
	Status() xdsclient.Status
}

// Ready reports whether the sidecar serves traffic.
type Ready func() bool

// NewHandler returns the admin handler.
// certs (nil without an identity) backs /certs.
func NewHandler(ready Ready, src Source, certs Certs, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ready", readyHandler(ready))
	mux.Handle("GET /certs", CertsHandler(certs, log))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, log, configDump(src.Snapshot(), src.Status(), log))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, log, src.Status())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// NewHealthHandler returns the health handler.
// metrics (may be nil) serves /metrics.
func NewHealthHandler(ready Ready, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz/ready", readyHandler(ready))
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

// NewServer returns an HTTP server for an admin or health handler.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

func readyHandler(ready Ready) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// ConfigDump is the /config_dump document.
type ConfigDump struct {
	Versions  xdsclient.Versions `json:"versions"`
	Complete  bool               `json:"complete"`
	Status    xdsclient.Status   `json:"status"`
	Listeners []json.RawMessage  `json:"listeners"`
	Routes    []json.RawMessage  `json:"routes"`
	Clusters  []json.RawMessage  `json:"clusters"`
	Endpoints []json.RawMessage  `json:"endpoints"`
}

func configDump(s *xdsclient.Snapshot, st xdsclient.Status, log *slog.Logger) ConfigDump {
	d := ConfigDump{
		Status:    st,
		Listeners: []json.RawMessage{},
		Routes:    []json.RawMessage{},
		Clusters:  []json.RawMessage{},
		Endpoints: []json.RawMessage{},
	}
	if s == nil {
		return d
	}
	d.Versions, d.Complete = s.Versions, s.Complete
	for _, k := range slices.Sorted(maps.Keys(s.Listeners)) {
		d.Listeners = append(d.Listeners, marshal(s.Listeners[k].Resource, log))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Routes)) {
		d.Routes = append(d.Routes, marshal(s.Routes[k], log))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Clusters)) {
		c, err := s.Clusters[k].Resource()
		if err != nil {
			log.Warn("config_dump: cannot decode a cluster", "name", k, "error", err)
			d.Clusters = append(d.Clusters, errorJSON(err))
			continue
		}
		d.Clusters = append(d.Clusters, marshal(c, log))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Endpoints)) {
		cla, err := s.Endpoints[k].Resource()
		if err != nil {
			log.Warn("config_dump: cannot decode an assignment", "name", k, "error", err)
			d.Endpoints = append(d.Endpoints, errorJSON(err))
			continue
		}
		d.Endpoints = append(d.Endpoints, marshal(cla, log))
	}
	return d
}

// jsonOpts resolves the Envoy type URLs of typed configs to the trimmed
// types the sidecar decodes them into.
var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, Resolver: xdsproto.Types{}}

func marshal(m proto.Message, log *slog.Logger) json.RawMessage {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		log.Warn("config_dump: cannot marshal a resource", "type", m.ProtoReflect().Descriptor().FullName(), "error", err)
		return errorJSON(err)
	}
	return b
}

// errorJSON stands for a resource the dump cannot show.
func errorJSON(err error) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	return b
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		log.Warn("admin: cannot encode JSON", "error", err)
		http.Error(w, "cannot encode JSON", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}
