// Package probe answers the app's rewritten kubelet probes on the
// sidecar's health port (mesh.PortHealth).
//
// The injector rewrites each app container's HTTP liveness, readiness and
// startup probe to GET <health port>/app-health/<container>/<kind> and
// hands the originals to the sidecar in mesh.EnvAppProbes (JSON, keyed by
// the rewritten path). Handler looks the path up, calls the original probe
// in plaintext (HTTP, or HTTPS without verification, as the kubelet does)
// on 127.0.0.1 or the probe's host, and answers with its status, so strict
// mTLS on the app's ports never breaks the kubelet. An unknown path is 404;
// an unreachable app is 503.
//
// Goroutines: none of its own; each probe runs on the health server's
// request goroutine, bounded by the request context and DefaultTimeout.
package probe
