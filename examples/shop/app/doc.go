// Package app is the shop demo's service: one HTTP server that plays one of
// four roles, chosen at start.
//
//	api-gateway  GET /checkout -> order   (http://order.shop.svc.cluster.local:8080/order)
//	order        GET /order    -> payment (http://payment:8080/pay)
//	                              inventory (http://inventory.shop:8080/reserve)
//	payment      GET /pay
//	inventory    GET /reserve
//
// Between them the calls use each form of service name the mesh routes
// (long, <svc>.<ns> and the short same-namespace form). Every role answers
// GET / and its own path with a Reply in JSON that names the instance that
// served it and, nested, the Replies of the calls it made, so a client can
// tell which endpoint of each service served a request. GET /healthz answers
// 200.
//
// Outbound calls go through the workload's sidecar, given as an explicit HTTP
// proxy (--proxy http://<own ip>:15001; Go's ProxyFromEnvironment skips
// loopback and some hosts, so the environment is not used), on one pooled
// keep-alive client with timeouts. Trace headers (W3C traceparent,
// tracestate, baggage, B3 single and multi, x-request-id) are copied from the
// inbound request to every outbound call.
//
// Faults for resilience tests (Config.Fault, flags --fault-*): a share of
// requests answered with an error status, extra latency, hanging forever, a
// share of connections closed without an answer, dead (every connection
// reset at once, the port still bound). /healthz is never faulted.
//
// Run-time fault control (FaultControl, flag --fault-admin <loopback
// addr>, off by default): GET /fault returns the fault in force and how
// many requests reached the role; PUT /fault with a Fault as JSON
// ({"errorRate":1,"errorCode":503,"delay":"50ms","hang":false,
// "resetRate":0,"dead":false}) replaces it; DELETE /fault makes the server
// healthy again. Guarded by where it listens: a separate listener that
// must be a loopback address and that no Service port names, so the mesh
// never routes to it; bodies are capped at 4 KiB and unknown fields
// refused.
//
// Lifecycle: Run serves until its context ends, then shuts its servers
// (the role and, when enabled, the fault admin API) down gracefully; it
// owns one goroutine per server, and the handler goroutines are the
// net/http servers'.
package app
