// Package filter groups the per-request resilience stages the outbound
// request path runs between the router and the transport, one package per
// concern:
//
//   - retry: the route's retry policy compiled from retry_policy: which
//     failures are retried, for which methods, the backoff between tries and
//     the replayable request body.
//   - timeout: the route's whole-request deadline and each try's deadline,
//     and telling one from the other when a try fails.
//   - outlier: a breaker per endpoint (github.com/sony/gobreaker) driven by
//     the cluster's outlier_detection, with ejection times that grow on
//     repeated ejection and a cap on the share of endpoints ejected at once.
//   - budget: the cluster's circuit_breakers thresholds (max connections,
//     pending and concurrent requests) and its retry budget or max_retries.
//   - metrics: the counters every decision above increments, read through
//     metrics.Source.
//
// The flow of one outbound request (package outbound runs it, on the
// server's request goroutine; the one goroutine here is a retry.Tee's
// pump, which reads a streamed body for every try and is stopped by
// Tee.Close when the request is done; a body the server received whole,
// as a gRPC unary call's usually is, is taken at once and starts none):
//
//	budget.StartRequest (503 x-weft-overloaded: max_requests)
//	timeout.Request (route timeout: one context for all tries and backoff)
//	retry.BufferBody (known length, up to request_body_buffer_limit;
//	    larger: no retries) or retry.Tee (unknown length: sent as read,
//	    copy kept up to the limit; a retry sends the copy, then the rest)
//	for each try:
//	    lb pick avoiding tried endpoints ─▶ outlier.Host.Allow (half-open probe)
//	    budget.StartRetry (tries after the first; over budget: stop)
//	    budget pending/connection limits
//	    timeout.Try (per_try_timeout) ─▶ transport
//	    retry.Classify(response, error) ─▶ outlier done(ok), lb latency
//	    retry.Policy.Retry? ─▶ backoff (retry.Policy.Backoff) or answer
//
// Every state here is atomics or gobreaker's own per-endpoint mutex; the
// compiled policies are immutable and shared by all requests.
package filter
