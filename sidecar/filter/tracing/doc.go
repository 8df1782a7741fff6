// Package tracing is the sidecar's distributed tracing: the configuration
// read from the HttpConnectionManager tracing of the accepted listeners
// (docs/architecture.md, "Observability contract"), the OpenTelemetry
// tracer provider built from it, and header propagation.
//
// Propagation: W3C traceparent/tracestate and baggage always; B3 single
// (b3) and multi (x-b3-*) are accepted on input and emitted when the
// listener metadata asks for it (W3C wins when a request carries both).
//
// Sampling is ParentBased(TraceIDRatioBased(rate)). Apply swaps the whole
// provider (sampler, exporter, processor) in one atomic store when the
// configuration changes; requests in flight finish on the provider they
// started with. With no configuration there is no provider: Start returns
// the incoming context and a no-op span, so the cost is one atomic load.
//
// Export: OTLP/HTTP (binary protobuf POSTed to the collector's
// http://host:4318/v1/traces) through Batcher, a bounded queue that never
// blocks the request path (a full queue drops the span and counts it) and
// exports batches with a deadline; failed exports count as dropped. The
// exporter is otlptrace's with a small HTTP client of its own (otlphttp.go):
// the otlptracehttp exporter links grpc-go.
//
// Goroutines: each provider's Batcher runs one export goroutine, stopped
// by the provider's Shutdown. Run owns the shutdowns: replaced providers
// are flushed and shut down on its goroutine, and the last one when its
// context ends (bounded by ShutdownTimeout).
package tracing
