package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Request labels (docs/architecture.md, "Observability contract"): bounded
// by the mesh's workloads, services and identities; never paths or IPs.
var requestLabels = []string{
	"direction",
	"source_workload", "source_namespace", "source_identity",
	"destination_workload", "destination_namespace", "destination_service", "destination_identity",
	"response_code",
}

// Size buckets: 64 B to 16 MiB by 4.
var sizeBuckets = prometheus.ExponentialBuckets(64, 4, 10)

// Requests are the per-request golden metrics.
type Requests struct {
	Total    *prometheus.CounterVec
	Duration *prometheus.HistogramVec
	ReqSize  *prometheus.HistogramVec
	RespSize *prometheus.HistogramVec

	series sync.Map // seriesKey -> *series
}

// NewRequests registers the request metrics on reg.
func NewRequests(reg prometheus.Registerer) *Requests {
	r := &Requests{
		Total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total", Help: "HTTP requests by direction, source, destination and response code.",
		}, requestLabels),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_request_duration_seconds", Help: "HTTP request duration as the sidecar saw it.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, requestLabels),
		ReqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_request_bytes", Help: "HTTP request body sizes.", Buckets: sizeBuckets,
		}, requestLabels),
		RespSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_response_bytes", Help: "HTTP response body sizes.", Buckets: sizeBuckets,
		}, requestLabels),
	}
	reg.MustRegister(r.Total, r.Duration, r.ReqSize, r.RespSize)
	return r
}

// Observe records one request; labels in requestLabels order.
//
// The four children of one label set are looked up once and cached
// (one sync.Map load per request instead of four label hashes, UTF-8
// checks and locked map lookups in the vectors). The cache holds exactly
// the label sets the vectors hold; nothing deletes series from them.
func (r *Requests) Observe(labels []string, seconds float64, reqBytes, respBytes int64) {
	s := r.seriesOf(labels)
	if s == nil {
		// Not the contract's label count: let the vectors report it.
		r.Total.WithLabelValues(labels...).Inc()
		r.Duration.WithLabelValues(labels...).Observe(seconds)
		r.ReqSize.WithLabelValues(labels...).Observe(float64(reqBytes))
		r.RespSize.WithLabelValues(labels...).Observe(float64(respBytes))
		return
	}
	s.total.Inc()
	s.duration.Observe(seconds)
	s.reqSize.Observe(float64(reqBytes))
	s.respSize.Observe(float64(respBytes))
}

// series are the children of one label set.
type series struct {
	total                       prometheus.Counter
	duration, reqSize, respSize prometheus.Observer
}

// nRequestLabels is len(requestLabels) (TestSeriesKey holds them equal).
const nRequestLabels = 9

type seriesKey [nRequestLabels]string

func (r *Requests) seriesOf(labels []string) *series {
	if len(labels) != nRequestLabels {
		return nil
	}
	k := seriesKey(labels)
	if v, ok := r.series.Load(k); ok {
		return v.(*series)
	}
	s := &series{
		total:    r.Total.WithLabelValues(labels...),
		duration: r.Duration.WithLabelValues(labels...),
		reqSize:  r.ReqSize.WithLabelValues(labels...),
		respSize: r.RespSize.WithLabelValues(labels...),
	}
	v, _ := r.series.LoadOrStore(k, s)
	return v.(*series)
}

// Collector exports every cluster's resilience counters at scrape time as
// weft_cluster_<counter>{cluster} (e.g. weft_cluster_retries_total).
type Collector struct {
	src  func() Source
	desc map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector reads the counters of src() (nil: none yet) at each scrape.
func NewCollector(src func() Source) *Collector {
	c := &Collector{src: src, desc: map[string]*prometheus.Desc{}}
	for name := range new(Stats).Snapshot() {
		c.desc[name] = prometheus.NewDesc("weft_cluster_"+name, "Resilience counter "+name+" of the cluster.", []string{"cluster"}, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.desc {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	src := c.src()
	if src == nil {
		return
	}
	for _, cl := range src.Clusters() {
		st := src.Stats(cl)
		if st == nil {
			continue
		}
		for name, v := range st.Snapshot() {
			ch <- prometheus.MustNewConstMetric(c.desc[name], prometheus.CounterValue, float64(v), cl)
		}
	}
}
