package debug

import (
	"io"
	"time"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/weftmesh/weft/control-plane/xds"
)

// Metrics are the control plane's xDS metrics, registered on a registry the
// daemon owns (never the global one). It is the xds server's Observer.
//
//	weft_xds_connected_proxies                 gauge: proxies with an open ADS stream
//	weft_xds_pushes_total{type,mode}           counter: responses sent (one per proxy and type)
//	weft_xds_config_bytes{type}                histogram: wire size of each response
//	weft_xds_nacks_total{type}                 counter: responses rejected
//	weft_xds_push_latency_seconds              histogram: registry change -> every affected proxy ACKed
//	weft_xds_push_proxies                      histogram: proxies a completed push changed
//	weft_xds_pending_pushes                    gauge: pushes not yet ACKed by all their proxies (WithPendingPushes)
//	weft_registry_errors_total                 counter: registry contents rejected
//
// type is cds, eds, lds, rds or sds; mode is sotw or delta.
type Metrics struct {
	pushes  *prometheus.CounterVec
	bytes   *prometheus.HistogramVec
	nacks   *prometheus.CounterVec
	latency prometheus.Histogram
	proxies prometheus.Histogram
}

var _ xds.Observer = (*Metrics)(nil)

// typeLabels are the short names of the served type URLs.
var typeLabels = map[string]string{
	resource.ClusterType:  "cds",
	resource.EndpointType: "eds",
	resource.ListenerType: "lds",
	resource.RouteType:    "rds",
	resource.SecretType:   "sds",
}

func typeLabel(typeURL string) string {
	if l, ok := typeLabels[typeURL]; ok {
		return l
	}
	return "other"
}

// connectedCounter is the cheap count xds.Server has.
type connectedCounter interface{ Connected() int }

// ConnectedOf is the number of connected proxies of x (xds.Server.Connected
// when x has it).
func ConnectedOf(x XDS) func() int {
	if cc, ok := x.(connectedCounter); ok {
		return cc.Connected
	}
	return func() int { return len(x.Proxies()) }
}

// NewMetrics registers the xDS metrics on reg; connected counts the
// connected proxies (xds.Server.Connected) and c (optional) gives the
// registry errors.
func NewMetrics(reg prometheus.Registerer, connected func() int, c Counters, opts ...MetricsOption) (*Metrics, error) {
	var mo metricsOptions
	for _, o := range opts {
		o(&mo)
	}
	m := &Metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_pushes_total", Help: "xDS responses sent, one per proxy and resource type.",
		}, []string{"type", "mode"}),
		bytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_xds_config_bytes", Help: "Wire size of each xDS response (config size per push and proxy).",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10), // 256 B .. 64 MiB
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_nacks_total", Help: "xDS responses a proxy rejected.",
		}, []string{"type"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_xds_push_latency_seconds", Help: "From the registry change to every affected proxy having ACKed it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 30},
		}),
		proxies: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_xds_push_proxies", Help: "Proxies a completed push changed.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 .. 16384
		}),
	}
	cs := []prometheus.Collector{
		m.pushes, m.bytes, m.nacks, m.latency, m.proxies,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_xds_connected_proxies", Help: "Proxies with an open ADS stream.",
		}, func() float64 { return float64(connected()) }),
	}
	if c != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "weft_registry_errors_total", Help: "Registry contents rejected.",
		}, func() float64 { return float64(c.RegistryErrors()) }))
	}
	if mo.pending != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_xds_pending_pushes", Help: "Pushes not yet ACKed by every proxy they changed (the backlog).",
		}, func() float64 { return float64(mo.pending()) }))
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MetricsOption adds an optional metric.
type MetricsOption func(*metricsOptions)

type metricsOptions struct{ pending func() int }

// WithPendingPushes exports weft_xds_pending_pushes (xds.Server.PendingPushes).
func WithPendingPushes(f func() int) MetricsOption {
	return func(o *metricsOptions) { o.pending = f }
}

// ResponseSent implements xds.Observer.
func (m *Metrics) ResponseSent(typeURL string, delta bool, bytes int) {
	mode := "sotw"
	if delta {
		mode = "delta"
	}
	t := typeLabel(typeURL)
	m.pushes.WithLabelValues(t, mode).Inc()
	m.bytes.WithLabelValues(t).Observe(float64(bytes))
}

// Nacked implements xds.Observer.
func (m *Metrics) Nacked(typeURL string) { m.nacks.WithLabelValues(typeLabel(typeURL)).Inc() }

// PushAcked implements xds.Observer.
func (m *Metrics) PushAcked(latency time.Duration, proxies int) {
	m.latency.Observe(latency.Seconds())
	m.proxies.Observe(float64(proxies))
}

// writeGathered renders g in the Prometheus text format.
func writeGathered(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
