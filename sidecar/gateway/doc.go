// Package gateway is the sidecar binary's egress-gateway mode
// (--mode=egress-gateway; docs/architecture.md, Egress contract): the one
// controlled way out of the mesh.
//
// The gateway's inbound listener (mTLS, the same socket and TLS sniffing
// as an ordinary sidecar's) serves Handler instead of the inbound handler.
// Request flow, on the server's request goroutine:
//
//	verified peer SPIFFE ID (none: 403)
//	-> destination: CONNECT authority, else Host (port 80)
//	-> Index.Lookup (exact host, then one-label wildcard; an IP literal
//	   only for a TCP port's addresses)       none: 403 not_registered
//	-> protocol (CONNECT for TLS/TCP, plain HTTP for HTTP) else 405
//	-> rules by identity (+ method/path)       none: 403 denied
//	-> per-destination connection limit        full: 503 overloaded
//	-> addresses from the gateway's Resolver (or STATIC endpoints), never
//	   the caller's; each tried in turn on connect failure
//	-> TLS: 200, peek the ClientHello, SNI must equal the CONNECT host
//	   (else the stream is reset: sni_mismatch), dial, splice
//	   TCP: dial, 200, splice
//	   HTTP: forward (Host preserved; an ExternalName Service's external
//	   name when called by a mesh name), TLS originated when marked,
//	   under the destination's resilience policy (resilience.go: limits,
//	   route timeout, retries within the retry budget, breaker), compiled
//	   by filter/retry, budget, outlier and timeout as for a route
//	-> one JSON access-log line and weft_egress_requests_total; a CONNECT
//	   tunnel also in the weft_tcp_* metrics (WithTCPMetrics: opened,
//	   closed, bytes each way, source the verified caller).
//
// The egress table comes from the Weft metadata of the inbound filter chain
// for mesh.PortEgressGateway; it is compiled (api/egress.Compile) once per
// xDS snapshot and swapped atomically, so requests take no lock. Validate
// is the xDS validator: a table that does not compile is NACKed.
//
// Per-destination state that outlives a table (connection counts,
// in-flight requests and retries, the breaker) is kept by the Handler,
// keyed by destination name and port.
//
// A plain HTTP request body of unknown length goes to the external host as
// it is read, with a copy kept for retries (filter/retry.Tee, 64 KiB): a
// retry sends the copy, then the rest of the client's live body, also
// after a try that sent only part of it; over 64 KiB no retry.
//
// Goroutines: a CONNECT splice owns one goroutine (caller -> upstream) and
// waits for it before the handler returns; a body of unknown length under
// a retry policy is read by its Tee's pump goroutine, which the handler
// stops (Tee.Close) before it returns; the HTTP transport owns its
// connection goroutines.
package gateway
