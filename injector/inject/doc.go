// Package inject is the sidecar injector as a pure function: a Pod (or a pod
// template), the mesh config and a Template (proxy image, resources, xDS
// address, capture defaults) in; the patched Pod and the RFC 6902 JSON patch
// that turns the one into the other out. No clients, clock or logger: the
// webhook (injector/webhook), `weft-injector inject -f` and the golden tests
// all call the same code.
//
// What Pod does to a pod that is not opted out (label weft.dev/inject=disabled)
// and not injected yet (annotation weft.dev/injected or a weft-proxy
// container):
//
//   - initContainers[0] = weft-init: `weft-sidecar init` with the capture
//     settings (mesh.InitFlag*), NET_ADMIN + NET_RAW, run as root, everything
//     else dropped. Annotations (mesh.AnnotationInclude*/Exclude*) refine the
//     Template's defaults; the health port is never captured inbound.
//   - the proxy (weft-proxy): with native sidecars (the default) it is
//     initContainers[1] with restartPolicy Always and a startup probe on the
//     health port, so the app's own init containers and containers start only
//     once the proxy is ready, and Jobs complete; with Template.LegacySidecar
//     it is containers[0] instead. It runs as mesh.ProxyUID, read-only root,
//     no privileges, with the projected token (audience mesh.TokenAudience)
//     and the trust bundle ConfigMap mounted, the downward-API environment
//     (mesh.Env*) and resources from the Template or the pod's annotations.
//   - HTTP liveness/readiness/startup probes of the app containers are
//     rewritten to GET <health port>/app-health/<container>/<kind>; the
//     originals go to the proxy's mesh.EnvAppProbes (JSON) so it can call them
//     in plaintext from inside the pod (strict mTLS cannot break kubelet
//     probes). TCP, gRPC and exec probes are left alone. A pod annotated
//     weft.dev/rewrite-app-probes: "false" keeps its probes: pod specs are
//     immutable, so a bare Pod (not a Deployment's) whose probes were
//     rewritten cannot be re-applied with client-side `kubectl apply` (the
//     three-way patch puts the user's probe back and the update is refused).
//   - annotation weft.dev/injected records what was done (JSON, see Record).
//
// Injection is idempotent: an injected pod comes back unchanged with an empty
// patch. Invalid annotations are errors (the webhook denies the pod with the
// message), never silently ignored.
package inject
