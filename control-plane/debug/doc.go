// Package debug is the control plane's debug HTTP server (default
// 127.0.0.1:15014). Every response is JSON unless said otherwise.
//
//	GET /healthz
//	    200 "ok" once the first good registry state has been pushed,
//	    503 before.
//	GET /debug/proxies
//	    The connected proxies, sorted by id:
//	    [{"id": "payment-1.shop",
//	      "connectedAt": "2026-11-23T08:30:00Z",
//	      "versions": {"type.googleapis.com/envoy.config.cluster.v3.Cluster":
//	                     {"acked": "3", "nack": "reason", "sent": "4"}, ...}}]
//	    acked is the last version the proxy ACKed ("" before its first ACK),
//	    nack the error_detail message of its last NACK (omitted when a later
//	    ACK cleared it), sent the last version sent to it.
//	GET /debug/config_dump?proxy=<node id>
//	    The proxy's current snapshot:
//	    {"id": "payment-1.shop",
//	     "resources": {"<type URL>": {"version": "4", "items": [<protojson>, ...]}}}
//	    for the Cluster, ClusterLoadAssignment, Listener, RouteConfiguration
//	    and Secret type URLs (Secrets hold certificate chains and roots,
//	    never a key), items sorted by name. 400 without
//	    proxy, 404 for a proxy that is not connected.
//	GET /debug/certs (WithCertificates)
//	    The latest unexpired certificate issued to each proxy, never a key:
//	    [{"proxy": "payment-1.shop", "identity": "spiffe://...",
//	      "serial": "<hex>", "notBefore": "...", "notAfter": "..."}]
//	POST /debug/ca/rotate-root?step=add|activate|remove[&force=true]
//	    (WithRootRotation; loopback clients only, 403 otherwise) one root
//	    rotation step; 409 when refused, with the reason.
//	GET /metrics
//	    Prometheus text from the daemon's registry (WithGatherer; client_golang,
//	    never the global registry) with the Metrics of metrics.go:
//	    weft_xds_connected_proxies, weft_xds_pushes_total{type,mode},
//	    weft_xds_config_bytes{type}, weft_xds_nacks_total{type},
//	    weft_xds_push_latency_seconds, weft_xds_push_proxies,
//	    weft_registry_errors_total; then whatever WithMetrics adds (the CA's
//	    weft_ca_signings_total{result}, weft_ca_certificates,
//	    weft_ca_trust_bundle_roots).
//	GET /debug/pprof/...
//	    net/http/pprof, to loopback clients only (403 otherwise).
//
// Metrics is the xds server's Observer: push latency is measured by the
// xds server from the registry change to the last ACK of every proxy that
// push changed (a proxy that disconnects stops holding it back).
package debug
