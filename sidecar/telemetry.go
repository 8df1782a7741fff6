package sidecar

import (
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/accesslog"
	"github.com/weftmesh/weft/sidecar/admin"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// newTelemetry builds the tracer, the request metrics, the access log and
// the observer the listeners use, and registers the resilience and
// tracing counters on the sidecar's registry.
func newTelemetry(cfg Config, log *slog.Logger, m *admin.Metrics, tables *atomic.Pointer[router.Table]) (*telemetry.Observer, *tracing.Tracer, *metrics.TCP) {
	tracer := tracing.New(log, cfg.TracingOptions...)
	reqs := metrics.NewRequests(m.Registry)
	tcp := metrics.NewTCP(m.Registry)
	m.Registry.MustRegister(metrics.NewCollector(func() metrics.Source {
		if t := tables.Load(); t != nil && t.Metrics != nil {
			return t.Metrics
		}
		return nil
	}))
	c := tracer.Counters()
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_tracing_spans_exported_total", Help: "Spans exported to the OTLP collector.",
		}, func() float64 { return float64(c.Exported.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_tracing_spans_dropped_total", Help: "Spans dropped: export queue full or export failed.",
		}, func() float64 { return float64(c.Dropped.Load()) }),
	)
	out := cfg.AccessLogOutput
	if out == nil {
		out = os.Stdout
	}
	return telemetry.New(selfOf(cfg), tracer, reqs, accesslog.New(out), telemetry.WithTCP(tcp)), tracer, tcp
}

// selfOf is the sidecar's own workload and identity ("" in plaintext).
func selfOf(cfg Config) telemetry.Self {
	self := telemetry.Self{Workload: cfg.Workload, Namespace: cfg.Namespace}
	if !cfg.Plaintext {
		self.Identity = mesh.SPIFFEID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount)
	}
	return self
}
