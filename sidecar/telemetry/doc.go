// Package telemetry joins the sidecar's three observability outputs for
// each request — spans (filter/tracing), Prometheus metrics
// (filter/metrics.Requests) and access logs (accesslog) — so the listeners
// make one call at the start of a request and one at its end
// (docs/architecture.md, "Observability contract").
//
// Flow on the inbound listener: Inbound extracts the incoming trace
// context (W3C or B3; only when tracing or access logs are on, the only
// readers of it: otherwise the headers just pass to the app), starts the
// SERVER span, writes its context into the
// request headers the app receives, and wraps the ResponseWriter to see the
// status and bytes; the handler adds what it decided (Note: route,
// cluster, endpoint, verified peer identity); Finish ends the span,
// observes the metrics and writes the access log line. On the outbound
// listener Outbound does the same without a span, and each try of the
// request is a CLIENT span (StartAttempt / EndAttempt) whose context is
// injected into that try's headers, so every retry is visible. An
// outbound request that made no try of its own ends as one CLIENT span
// with its response flags (denied, breaker_open, ...).
//
// A CONNECT (captured raw TCP, a tunnel) is a TCP stream, not a request
// in the metrics: the handler calls OpenTCP when the stream starts
// carrying bytes and counts them in the returned series as they move
// (metrics.TCPSeries); Finish counts it closed (and opened, if it never
// carried any). On the inbound, NotePeer records the verified peer before
// authorization and NoteService the service the request is for.
//
// A Request is pooled and lives on the request goroutine from Inbound or
// Outbound to Finish; Inbound and Outbound return it and the handler
// passes it to whatever notes the request (its methods are nil-safe, for
// a handler without telemetry). The request they return is the listener's
// own unless a trace context has to travel with it (a traced SERVER span;
// an outbound request's incoming trace context when tracing is on). With
// tracing off and access logs off a request allocates nothing here: the
// record, its ResponseWriter wrapper and body counter are pooled, and the
// metric series are cached (outbound and inbound allocs_test.go bound it).
//
// Goroutines: none. Configuration (Apply) comes from the xDS client's
// goroutine and is swapped atomically by the tracer and the logger.
package telemetry
