package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ShutdownTimeout bounds the flush of a provider being replaced or of the
// last one at shutdown.
const ShutdownTimeout = 2 * time.Second

// Propagators. Extraction runs B3 first so that W3C, when present too,
// wins.
var (
	w3c      = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b3Out    = b3.New(b3.WithInjectEncoding(b3.B3SingleHeader | b3.B3MultipleHeader))
	extractP = propagation.NewCompositeTextMapPropagator(b3.New(), propagation.TraceContext{}, propagation.Baggage{})
	b3Keys   = []string{"B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags"}
	noopT    = noop.NewTracerProvider().Tracer("")
)

// provider is one configuration's tracer.
type provider struct {
	cfg    Config
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// Tracer makes spans with the current configuration's provider.
type Tracer struct {
	log      *slog.Logger
	cur      atomic.Pointer[provider]
	retired  chan *sdktrace.TracerProvider
	counters Counters
	queue    int
	newExp   func(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error)
}

// Option configures a Tracer.
type Option func(*Tracer)

// WithQueueSize sets the batch queue bound (DefaultQueueSize).
func WithQueueSize(n int) Option { return func(t *Tracer) { t.queue = n } }

// WithExporter replaces the OTLP/HTTP exporter (tests).
func WithExporter(f func(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error)) Option {
	return func(t *Tracer) { t.newExp = f }
}

// New returns a Tracer with tracing off until Apply.
func New(log *slog.Logger, opts ...Option) *Tracer {
	t := &Tracer{log: log.With("component", "tracing"), retired: make(chan *sdktrace.TracerProvider, 16), queue: DefaultQueueSize, newExp: otlpExporter}
	for _, o := range opts {
		o(t)
	}
	return t
}

// otlpExporter exports to the OTLP/HTTP collector at url (Config.Endpoint)
// without retries: the Batcher bounds each export with
// DefaultExportTimeout and counts a failed one as dropped.
func otlpExporter(ctx context.Context, url string) (sdktrace.SpanExporter, error) {
	return otlptrace.New(ctx, newOTLPHTTP(url))
}

// Counters returns the export counters.
func (t *Tracer) Counters() *Counters { return &t.counters }

// Config returns the configuration in force.
func (t *Tracer) Config() Config {
	if p := t.cur.Load(); p != nil {
		return p.cfg
	}
	return Config{}
}

// Apply installs cfg when it differs from the current one. It never
// blocks: the replaced provider is shut down by Run.
func (t *Tracer) Apply(cfg Config) error {
	old := t.cur.Load()
	if old != nil && old.cfg == cfg || old == nil && !cfg.Enabled() {
		return nil
	}
	var p *provider
	if cfg.Enabled() {
		exp, err := t.newExp(context.Background(), cfg.Endpoint)
		if err != nil {
			return fmt.Errorf("tracing: exporter %s: %w", cfg.Endpoint, err)
		}
		res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Rate))),
			sdktrace.WithSpanProcessor(NewBatcher(exp, &t.counters, t.queue)),
			sdktrace.WithResource(res),
		)
		p = &provider{cfg: cfg, tp: tp, tracer: tp.Tracer("weft-sidecar")}
	}
	t.cur.Store(p)
	t.log.Info("tracing configured", "endpoint", cfg.Endpoint, "rate", cfg.Rate, "b3", cfg.B3, "service", cfg.ServiceName)
	if old != nil {
		select {
		case t.retired <- old.tp:
		default:
			// Run is far behind: shut it down without flushing.
			go func() { _ = old.tp.Shutdown(context.Background()) }()
		}
	}
	return nil
}

// Run shuts down replaced providers, and the current one when ctx ends.
func (t *Tracer) Run(ctx context.Context) error {
	shutdown := func(tp *sdktrace.TracerProvider) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.log.Debug("tracer provider shutdown", "error", err)
		}
	}
	for {
		select {
		case tp := <-t.retired:
			shutdown(tp)
		case <-ctx.Done():
			if p := t.cur.Swap(nil); p != nil {
				shutdown(p.tp)
			}
			for {
				select {
				case tp := <-t.retired:
					shutdown(tp)
				default:
					return nil
				}
			}
		}
	}
}

// Extract returns ctx with the remote span context and baggage of h (W3C
// or B3). A request without any propagation header (the usual case, and
// every request when nobody traces) returns ctx as it is: the propagators
// would only add B3's "not deferred" markers, which read the same as none,
// at two context allocations and a dozen header lookups per request.
func Extract(ctx context.Context, h http.Header) context.Context {
	if !HasPropagationHeader(h) {
		return ctx
	}
	return extractP.Extract(ctx, carrier(h))
}

// carrier is propagation.HeaderCarrier, but for the names the propagators
// use, which it maps to their canonical form without http.Header's
// per-call canonicalization (an allocation for each lower-case name: ten
// per traced request pair).
type carrier http.Header

var (
	_ propagation.TextMapCarrier = carrier(nil)
	_ propagation.ValuesGetter   = carrier(nil)
)

// canonicalKey returns the canonical form of a propagator's header name.
func canonicalKey(k string) string {
	switch k {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	case "b3":
		return "B3"
	case "x-b3-traceid":
		return "X-B3-Traceid"
	case "x-b3-spanid":
		return "X-B3-Spanid"
	case "x-b3-parentspanid":
		return "X-B3-Parentspanid"
	case "x-b3-sampled":
		return "X-B3-Sampled"
	case "x-b3-flags":
		return "X-B3-Flags"
	}
	return http.CanonicalHeaderKey(k)
}

// Get implements propagation.TextMapCarrier.
func (c carrier) Get(key string) string {
	if v := c[canonicalKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of key (propagation.ValuesGetter: the
// baggage propagator reads them all).
func (c carrier) Values(key string) []string { return c[canonicalKey(key)] }

// Set implements propagation.TextMapCarrier.
func (c carrier) Set(key, value string) { c[canonicalKey(key)] = []string{value} }

// Keys implements propagation.TextMapCarrier.
func (c carrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// extractKeys are the canonical names of every header extractP reads
// (carrier.Get looks up canonical names too).
var extractKeys = append([]string{"Traceparent", "Tracestate", "Baggage"}, b3Keys...)

// HasPropagationHeader reports whether h has a header Extract reads: when
// it has none, Extract returns its context unchanged.
func HasPropagationHeader(h http.Header) bool {
	for _, k := range extractKeys {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// Start starts a span on the current provider; with tracing off it
// returns ctx unchanged and a no-op span (Enabled false). opts (e.g. a
// start timestamp) are added to the span kind.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, opts ...trace.SpanStartOption) (context.Context, trace.Span, bool) {
	p := t.cur.Load()
	if p == nil {
		return ctx, trace.SpanFromContext(ctx), false
	}
	var sp trace.Span
	if len(opts) == 0 {
		ctx, sp = p.tracer.Start(ctx, name, spanKind(kind)...)
	} else {
		ctx, sp = p.tracer.Start(ctx, name, append(opts, trace.WithSpanKind(kind))...)
	}
	return ctx, sp, true
}

// The span kind options of the sidecar's spans, made once, as the
// one-option lists Start passes (read only): WithSpanKind allocates its
// option at each call, and a list built per call escapes through the
// SDK's Start.
var (
	kindServer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	kindClient = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// spanKind returns the start options (just the kind) for kind; the
// caller must not modify them.
func spanKind(kind trace.SpanKind) []trace.SpanStartOption {
	switch kind {
	case trace.SpanKindServer:
		return kindServer
	case trace.SpanKindClient:
		return kindClient
	}
	return []trace.SpanStartOption{trace.WithSpanKind(kind)}
}

// Inject writes ctx's span context into h: W3C traceparent/tracestate and
// baggage, plus B3 when configured (stale B3 headers are removed
// otherwise). A ctx without a valid span context leaves h alone.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, k := range b3Keys {
		delete(h, k)
	}
	c := carrier(h)
	w3c.Inject(ctx, c)
	if p := t.cur.Load(); p != nil && p.cfg.B3 {
		b3Out.Inject(ctx, c)
	}
}

// Noop is a tracer that records nothing (for code paths without a Tracer).
func Noop() trace.Tracer { return noopT }
