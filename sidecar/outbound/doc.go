// Package outbound is the sidecar's outbound listener: the HTTP proxy the
// app sends its requests to (LDS listener "outbound", <ip>:15001).
//
// Request path: the app sends either an absolute-form request, using the
// sidecar as its HTTP proxy (GET http://payment.shop:8080/x), or an
// origin-form request with a Host header; net/http gives both as r.Host.
// The handler loads the current router.Table (one atomic load; the table is
// immutable), takes the outbound listener's chain, finds the virtual host by
// the exact lower-cased Host, the first matching route, its cluster, and an
// endpoint from the cluster's picker, removes any mesh header the app tried
// to send (x-weft-target-port, x-weft-peer-identity), and hands the request
// to proxy.Forwarder, whose transport tunnels it to the peer sidecar (h2c)
// or sends it directly (HTTP/1.1).
//
// Resilience (attempt.go, package filter): the route picks the cluster
// (weighted split), the cluster's max_requests admits the request (else 503
// with x-weft-overloaded), the route timeout bounds everything after, the
// body is kept up to request_body_buffer_limit (read first when its length
// is known, copied as it streams when not: retry.Tee, whose retries send
// the copy and then the rest of the client's live body, also after a try
// that sent only part of it), and each try picks an
// endpoint avoiding those already tried, asks its breaker, applies
// max_pending_requests / max_connections, sends with the per-try timeout,
// and records the outcome (breaker, latency). A failed try is retried when
// retry_on, the method rule, num_retries and the retry budget allow, after
// the backoff; a 421 from a peer sidecar (port not served there yet or any
// more) and its 503 with x-weft-app-unreachable (it could not connect to
// its app: the request never reached it) count as refused-stream. x-weft-debug: 1 on the request adds
// x-weft-attempts and x-weft-upstream to the response.
//
// Egress (egress.go; docs/architecture.md, Egress contract): a Host no
// virtual host matches is refused with 502 "host ... is not in the mesh
// registry (outbound policy REGISTRY_ONLY)" and counted; a route to the
// ORIGINAL_DST passthrough (ALLOW_ANY) goes straight to the request's own
// Host; CONNECT host:port to an egress virtual host opens an HTTP/2
// CONNECT stream to an egress gateway replica over the mTLS tunnel (the
// next replica on connect failure) and splices the app's bytes through it
// (CONNECT to the passthrough dials host:port directly; to a mesh service
// it is 405). The splice owns one goroutine (app -> upstream) and waits
// for it, and counts the stream in the weft_tcp_* metrics (a CONNECT is
// not in the request metrics).
//
// The sidecar answers itself, with a "weft: ..." text body: 404 when no
// route matches, 503 before the first configuration, when a
// route's cluster is gone or the cluster has no healthy endpoint, 502 when
// the upstream cannot be reached, 504 (x-weft-timeout: request) when the
// route timeout expires, 503 with x-weft-overloaded when a cluster limit
// refuses the request or every endpoint is ejected, 405 for CONNECT to
// a mesh service.
//
// Goroutines: the server (NewServer: h1server, handing h2c to net/http's
// server, or to h2server when the sidecar sets h1server.Server.HTTP2, as it
// does by default) runs one goroutine per connection and one per h2c
// stream; the handler runs on it and blocks until the response is copied. Nothing here owns a goroutine; the sidecar binds, serves and
// drains the server (NewServer) as LDS says. A body of unknown length under
// a retry policy is read by its retry.Tee's pump goroutine, which the
// handler stops (Tee.Close) before it returns, unless h2server received
// it whole before the first try read it (a gRPC unary call): then the
// Tee takes it at once and no goroutine runs.
package outbound
