package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracingCost measures the telemetry one request costs across a
// sidecar pair: the calling sidecar's outbound record and client span (one
// attempt) and the called sidecar's inbound record and server span, with
// metrics on and the export going to an exporter that discards (the OTLP
// encoding and network are off the request path, in the batcher). "off" is
// no tracing configuration; then sampling 0, 0.01 and 1.
//
//	cd sidecar && go test -run '^$' -bench BenchmarkTracingCost -benchtime 1s .
//
// Compare with BenchmarkProxyPair/mesh: the difference of ns/op between
// "off" and a rate is what tracing adds to a proxied request.
func BenchmarkTracingCost(b *testing.B) {
	ep := &lb.Endpoint{Addr: "127.0.0.9:8080", Workload: "order-1.shop", Identity: "spiffe://cluster.local/ns/shop/sa/order"}
	for _, tc := range []struct {
		name string
		cfg  tracing.Config
	}{
		{"off", tracing.Config{}},
		{"rate=0", tracing.Config{Endpoint: "x", Rate: 0, ServiceName: "a.shop"}},
		{"rate=0.01", tracing.Config{Endpoint: "x", Rate: 0.01, ServiceName: "a.shop"}},
		{"rate=1", tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "a.shop"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tr := tracing.New(slog.New(slog.DiscardHandler), tracing.WithExporter(func(context.Context, string) (sdktrace.SpanExporter, error) {
				return discardExporter{}, nil
			}))
			if err := tr.Apply(tc.cfg); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = tr.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			reg := prometheus.NewRegistry()
			reqs := metrics.NewRequests(reg)
			client := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/api"}, tr, reqs, nil)
			server := telemetry.New(telemetry.Self{Workload: "order-1", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/order"}, tr, reqs, nil)
			out := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
			rw := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r := out.Clone(context.Background())
				w, r, rq := client.Outbound(rw, r)
				rq.Note("default", "outbound|8080||order.shop.svc.cluster.local", nil, "")
				req, sp := rq.StartAttempt(r, ep, 1)
				start := time.Now()
				// The peer's inbound.
				iw, ir, irq := server.Inbound(rw, req)
				irq.Note("default", "inbound|8080||", nil, "spiffe://cluster.local/ns/shop/sa/api")
				_ = ir
				iw.WriteHeader(http.StatusOK)
				server.Finish(irq)
				rq.EndAttempt(sp, start, http.StatusOK, nil)
				w.WriteHeader(http.StatusOK)
				client.Finish(rq)
			}
			b.StopTimer()
			c := tr.Counters()
			b.ReportMetric(float64(c.Dropped.Load()), "dropped")
		})
	}
}
