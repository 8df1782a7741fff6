package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestExtract(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name      string
		hdr       http.Header
		wantTrace string
		wantBag   string
	}{
		{name: "none", hdr: http.Header{"Accept": {"*/*"}}},
		{name: "traceparent", hdr: http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}}, wantTrace: traceID},
		{name: "b3 single", hdr: http.Header{"B3": {traceID + "-00f067aa0ba902b7-1"}}, wantTrace: traceID},
		{name: "b3 multiple", hdr: http.Header{"X-B3-Traceid": {traceID}, "X-B3-Spanid": {"00f067aa0ba902b7"}}, wantTrace: traceID},
		{name: "baggage only", hdr: http.Header{"Baggage": {"k=v"}}, wantBag: "v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := Extract(context.Background(), tc.hdr)
			sc := trace.SpanContextFromContext(ctx)
			got := ""
			if sc.IsValid() {
				got = sc.TraceID().String()
			}
			if got != tc.wantTrace {
				t.Errorf("trace id %q, want %q", got, tc.wantTrace)
			}
			if v := baggage.FromContext(ctx).Member("k").Value(); v != tc.wantBag {
				t.Errorf("baggage k=%q, want %q", v, tc.wantBag)
			}
			if tc.name == "none" && ctx != context.Background() {
				t.Errorf("no propagation header: context changed")
			}
		})
	}
}

// BenchmarkExtract is the per-request cost of Extract on a request without
// trace headers (the inbound listener calls it on every request).
func BenchmarkExtract(b *testing.B) {
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}, "X-Weft-Target-Port": {"8080"}}
	ctx := context.Background()
	b.Run("Extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Extract(ctx, h)
		}
	})
	b.Run("propagators", func(b *testing.B) { // what Extract did before
		b.ReportAllocs()
		for b.Loop() {
			_ = extractP.Extract(ctx, propagation.HeaderCarrier(h))
		}
	})
}

// TestCarrierKeys: the carrier reads and writes every propagator's header
// under its canonical name, as propagation.HeaderCarrier does, without
// allocating a canonical name per lookup.
func TestCarrierKeys(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	}))
	mine, theirs := http.Header{}, http.Header{}
	all := propagation.NewCompositeTextMapPropagator(w3c, b3Out)
	all.Inject(ctx, carrier(mine))
	all.Inject(ctx, propagation.HeaderCarrier(theirs))
	if len(mine) == 0 || len(mine) != len(theirs) {
		t.Fatalf("injected %v, want %v", mine, theirs)
	}
	for k, v := range theirs {
		if got := mine[k]; len(got) != 1 || got[0] != v[0] {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for _, k := range append(extractP.Fields(), w3c.Fields()...) {
		if got, want := canonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
		c := carrier(theirs)
		if n := testing.AllocsPerRun(20, func() { _ = c.Get(k); _ = c.Values(k) }); n != 0 {
			t.Errorf("Get/Values(%q): %.0f allocations, want 0", k, n)
		}
	}
	if got := carrier(http.Header{"X-Other": {"v"}}).Get("x-other"); got != "v" {
		t.Errorf("other name: %q, want v", got)
	}
}

// TestSpanKindOption: each kind's start options set that kind, and
// starting a server or client span allocates neither the option nor its
// list: 2 allocations at sampling rate 0 (the SDK's span and its context
// value; 4 with both made per span).
func TestSpanKindOption(t *testing.T) {
	for _, k := range []trace.SpanKind{trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindInternal, trace.SpanKindProducer} {
		cfg := trace.NewSpanStartConfig(spanKind(k)...)
		if got := cfg.SpanKind(); got != k {
			t.Errorf("spanKind(%v) sets %v", k, got)
		}
	}
	tr := New(slog.New(slog.DiscardHandler), WithExporter(func(context.Context, string) (sdktrace.SpanExporter, error) {
		return tracetest.NewNoopExporter(), nil
	}))
	if err := tr.Apply(Config{Endpoint: "x", Rate: 0, ServiceName: "a.shop"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []trace.SpanKind{trace.SpanKindServer, trace.SpanKindClient} {
		n := testing.AllocsPerRun(50, func() {
			_, sp, _ := tr.Start(context.Background(), "GET", k)
			sp.End()
		})
		if n > 2 {
			t.Errorf("starting a %v span: %.0f allocations, want at most 2", k, n)
		}
	}
}
