package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weftmesh/weft/sidecar/accesslog"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// recorder is an in-memory exporter.
type recorder struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
	block chan struct{} // when set, ExportSpans waits on it (slow collector)
	fail  bool
}

func (r *recorder) ExportSpans(ctx context.Context, s []sdktrace.ReadOnlySpan) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.fail {
		return io.ErrUnexpectedEOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, s...)
	return nil
}
func (r *recorder) Shutdown(context.Context) error { return nil }
func (r *recorder) all() []sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdktrace.ReadOnlySpan(nil), r.spans...)
}

var (
	_ sdktrace.SpanExporter = (*recorder)(nil)
	_                       = tracetest.SpanStub{}
)

func newTracer(t *testing.T, rec *recorder, cfg tracing.Config, opts ...tracing.Option) *tracing.Tracer {
	t.Helper()
	tr := tracing.New(slog.New(slog.DiscardHandler), append([]tracing.Option{tracing.WithExporter(func(context.Context, string) (sdktrace.SpanExporter, error) { return rec, nil })}, opts...)...)
	if err := tr.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return tr
}

// outboundOnce runs one outbound request through an observer: the app's
// headers in, one attempt, and returns the headers the upstream saw.
func outboundOnce(o *telemetry.Observer, in http.Header, status int) http.Header {
	r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
	for k, v := range in {
		r.Header[k] = v
	}
	w, r, rq := o.Outbound(httptest.NewRecorder(), r)
	rq.Note("default", "outbound|8080||order.shop.svc.cluster.local", nil, "")
	ep := &lb.Endpoint{Addr: "127.0.0.9:8080", Workload: "order-1.shop", Identity: "spiffe://cluster.local/ns/shop/sa/order"}
	req, sp := rq.StartAttempt(r.Clone(r.Context()), ep, 1)
	start := time.Now()
	rq.EndAttempt(sp, start, status, nil)
	w.WriteHeader(status)
	o.Finish(rq)
	return req.Header
}

func TestPropagationConversions(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name    string
		b3      bool
		in      http.Header
		wantHas []string // header names that must be present
		wantNot []string
		check   func(t *testing.T, h http.Header)
	}{
		{
			name: "b3 single in, w3c out", in: http.Header{"B3": {traceID + "-00f067aa0ba902b7-1"}},
			wantHas: []string{"Traceparent"}, wantNot: []string{"B3", "X-B3-Traceid"},
			check: func(t *testing.T, h http.Header) {
				if !strings.HasPrefix(h.Get("Traceparent"), "00-"+traceID+"-") || !strings.HasSuffix(h.Get("Traceparent"), "-01") {
					t.Errorf("traceparent %q does not continue trace %s sampled", h.Get("Traceparent"), traceID)
				}
			},
		},
		{
			name: "b3 multi in, w3c out", in: http.Header{"X-B3-Traceid": {traceID}, "X-B3-Spanid": {"00f067aa0ba902b7"}, "X-B3-Sampled": {"1"}},
			wantHas: []string{"Traceparent"}, wantNot: []string{"X-B3-Traceid"},
			check: func(t *testing.T, h http.Header) {
				if !strings.HasPrefix(h.Get("Traceparent"), "00-"+traceID+"-") {
					t.Errorf("traceparent %q does not continue trace %s", h.Get("Traceparent"), traceID)
				}
			},
		},
		{
			name: "w3c in, b3 out", b3: true, in: http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}, "Baggage": {"k=v"}},
			wantHas: []string{"Traceparent", "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Sampled", "Baggage"},
			check: func(t *testing.T, h http.Header) {
				if h.Get("X-B3-Traceid") != traceID || !strings.HasPrefix(h.Get("B3"), traceID+"-") {
					t.Errorf("b3 headers %q / %q do not carry trace %s", h.Get("B3"), h.Get("X-B3-Traceid"), traceID)
				}
				if h.Get("X-B3-Spanid") == "00f067aa0ba902b7" {
					t.Error("b3 span id is the parent's, not the client span's")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 0, B3: tc.b3, ServiceName: "api.shop"})
			o := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop"}, tr, nil, nil)
			h := outboundOnce(o, tc.in, 200)
			for _, k := range tc.wantHas {
				if h.Get(k) == "" {
					t.Errorf("upstream request has no %s: %v", k, h)
				}
			}
			for _, k := range tc.wantNot {
				if h.Get(k) != "" {
					t.Errorf("upstream request has %s=%q", k, h.Get(k))
				}
			}
			tc.check(t, h)
		})
	}
}

func TestSamplingRates(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want int
	}{{0, 0}, {1, 50}} {
		rec := &recorder{}
		tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: tc.rate, ServiceName: "api.shop"})
		o := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop"}, tr, nil, nil)
		for range 50 {
			h := outboundOnce(o, nil, 200)
			if tp := h.Get("Traceparent"); tp == "" {
				t.Fatalf("rate %v: no traceparent sent", tc.rate)
			} else if sampled := strings.HasSuffix(tp, "-01"); sampled != (tc.rate == 1) {
				t.Fatalf("rate %v: traceparent %s", tc.rate, tp)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for len(rec.all()) < tc.want && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		time.Sleep(300 * time.Millisecond) // one more batch interval: nothing extra may arrive
		if got := len(rec.all()); got != tc.want {
			t.Errorf("rate %v: %d spans exported, want %d", tc.rate, got, tc.want)
		}
	}
}

func TestRateChangeAtRunTime(t *testing.T) {
	rec := &recorder{}
	tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 0, ServiceName: "a.b"})
	o := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop"}, tr, nil, nil)
	if tp := outboundOnce(o, nil, 200).Get("Traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Fatalf("rate 0: %s", tp)
	}
	if err := tr.Apply(tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "a.b"}); err != nil {
		t.Fatal(err)
	}
	if tp := outboundOnce(o, nil, 200).Get("Traceparent"); !strings.HasSuffix(tp, "-01") {
		t.Fatalf("rate 1 after the change: %s", tp)
	}
}

func TestSlowCollectorDropsWithoutBlocking(t *testing.T) {
	rec := &recorder{block: make(chan struct{})}
	defer close(rec.block)
	tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "a.b"}, tracing.WithQueueSize(8))
	o := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop"}, tr, nil, nil)
	start := time.Now()
	const n = 2000
	for range n {
		outboundOnce(o, nil, 200)
	}
	// A blocking processor would wait ~1 s (the export timeout) per 8 spans.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("%d requests took %v with a stuck collector", n, d)
	}
	if got := tr.Counters().Dropped.Load(); got < n-8-tracing.DefaultBatchSize {
		t.Errorf("dropped %d spans, want at least %d", got, n-8-tracing.DefaultBatchSize)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := metrics.NewRequests(reg)
	var buf bytes.Buffer
	al := accesslog.New(&buf)
	al.Apply(accesslog.Config{Enabled: true, Rate: 1, MinStatus: 500})
	rec := &recorder{}
	tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "a.b"})
	o := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/api"}, tr, reqs, al)
	for range 3 {
		outboundOnce(o, nil, 200)
	}
	outboundOnce(o, nil, 503)
	labels := func(code string) prometheus.Labels {
		return prometheus.Labels{
			"direction": "outbound", "source_workload": "api", "source_namespace": "shop",
			"source_identity": "spiffe://cluster.local/ns/shop/sa/api", "destination_workload": "order-1", "destination_namespace": "shop",
			"destination_service": "order.shop.svc.cluster.local", "destination_identity": "spiffe://cluster.local/ns/shop/sa/order", "response_code": code,
		}
	}
	if got := testutil.ToFloat64(reqs.Total.With(labels("200"))); got != 3 {
		t.Errorf("200s: %v, want 3", got)
	}
	if got := testutil.ToFloat64(reqs.Total.With(labels("503"))); got != 1 {
		t.Errorf("503s: %v, want 1", got)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("access log has %d lines, want 1 (minStatus 500): %q", len(lines), buf.String())
	}
	var e accesslog.Entry
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Status != 503 || len(e.TraceID) != 32 || e.DestinationWorkload != "order-1.shop" || e.Upstream != "127.0.0.9:8080" || e.Direction != "outbound" {
		t.Errorf("access log entry %+v", e)
	}
}
