// Package authz evaluates Envoy RBAC HTTP filter configurations
// (envoy.extensions.filters.http.rbac.v3.RBAC with envoy.config.rbac.v3
// policies) against a request, and normalizes request paths before they are
// matched. It is the one evaluator of the mesh: the sidecar's inbound and
// outbound listeners run it per request (sidecar/filter/authz), and
// `weftctl authz check` runs it on the configuration the control plane
// translates, so both decide the same way. It depends on Envoy's types only
// (docs/architecture.md, Authorization contract): it reads them as the
// trimmed ones of api/xdsproto (what the sidecar decodes), and takes
// go-control-plane's through their wire form.
//
// # Flow
//
// Compile turns the RBAC filters of one HTTP connection manager, in filter
// order, into an immutable Engine; anything it does not implement (CEL
// conditions, matcher trees, metadata, custom matchers) is an error, so the
// xDS client NACKs instead of failing open. Engine.Evaluate walks the
// filters in order: a LOG filter records the first matching policy (audit),
// a DENY filter denies when a policy matches, an ALLOW filter denies when no
// policy matches. Policies are tried in name order, so the deciding policy
// is deterministic. Evaluate allocates nothing and takes no lock: an Engine
// is shared by every request goroutine.
//
// NormalizePath is applied before matching (RFC 3986 dot segments, merged
// slashes, decoded unreserved characters; encoded '/' and '\' rejected).
package authz
