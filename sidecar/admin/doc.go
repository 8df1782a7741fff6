// Package admin serves the sidecar's admin endpoints on <ip>:15000
// (mesh.PortAdmin) and its health endpoint on <ip>:15020 (mesh.PortHealth).
//
// Admin: /ready answers 200 once the first configuration was accepted and
// applied (listeners bound) and 503 before and while draining; /config_dump
// is the accepted configuration as JSON (each resource in protojson with
// proto field names, like Envoy's), with its versions and the xDS status;
// /status is the xDS status alone; /debug/pprof/ is net/http/pprof (weft-sidecar
// runs with heap profiling off unless GODEBUG sets memprofilerate).
// Health: /healthz/ready is the same readiness as /ready, for kubelet probes.
//
// Goroutines: none of its own; the sidecar serves the handlers with
// NewServer and shuts them down last, after the listeners drained.
package admin
