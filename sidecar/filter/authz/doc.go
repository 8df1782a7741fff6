// Package authz is the sidecar's authorization stage: it runs the RBAC
// filters the control plane put in a listener's HTTP connection manager
// (compiled by the xDS client into an api/authz Engine per filter chain)
// on every request, before the router (docs/architecture.md,
// Authorization contract).
//
// Inbound flow (package inbound calls Inbound once the filter chain of the
// target port is known and the peer's certificate verified):
//
//	strip client-sent identity headers (x-forwarded-client-cert,
//	x-weft-peer-identity)
//	normalize the path (api/authz.NormalizePath): 400 on an encoded '/'
//	or '\' or a malformed escape; the app receives the normalized path
//	Engine.Evaluate(principal = verified SPIFFE ID, source address,
//	destination port, method, :authority, path, headers)
//	deny: 403 "weft: RBAC: access denied", a log line naming the deciding
//	policy, weft_authz_denied_total{policy}
//
// The outbound listener calls Outbound with the outbound listener's engine
// (the NetworkPolicy egress allowlist). A missing engine denies: Weft
// fails closed.
//
// Nothing here owns a goroutine or a lock: the engines are immutable and
// the counter is Prometheus' own atomics.
package authz
