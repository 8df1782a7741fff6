package mesh

// Observability (issue 8): names shared by the control plane's translator,
// the file registry and the sidecar's telemetry. See docs/architecture.md,
// "Observability contract".
const (
	// MeshConfigMapName is the ConfigMap (in ControlPlaneNamespace) whose
	// data[MeshConfigMapKey] is a YAML meshconfig.Config fragment; its
	// tracing and accessLog replace the control plane's flags and may be
	// edited at run time.
	MeshConfigMapName = "weft-mesh-config"
	MeshConfigMapKey  = "mesh"

	// TracerOpenTelemetry is the HttpConnectionManager tracing provider
	// name (envoy.extensions.tracers.opentelemetry... OpenTelemetryConfig).
	TracerOpenTelemetry = "envoy.tracers.opentelemetry"
	// OTLPPort is the OTLP/HTTP port of a collector (Jaeger, the
	// OpenTelemetry Collector): the sidecars export spans over OTLP/HTTP
	// (protobuf) to http://<tracing endpoint>/v1/traces.
	OTLPPort = 4318
	// OTLPTracesPath is the OTLP/HTTP path of trace export.
	OTLPTracesPath = "/v1/traces"
	// OTLPCluster is the cluster named in the OpenTelemetryConfig's
	// http_service.http_uri (Envoy requires one); the sidecar ignores it
	// and dials the URI's host.
	OTLPCluster = "otlp"
	// AccessLoggerStdout is the access logger name (StdoutAccessLog).
	AccessLoggerStdout = "envoy.access_loggers.stdout"
	// AccessLogSamplingRuntimeKey and AccessLogStatusRuntimeKey are the
	// runtime keys of the access log filters (the sidecar has no runtime:
	// the default values apply).
	AccessLogSamplingRuntimeKey = "weft.access_log.sampling"
	AccessLogStatusRuntimeKey   = "weft.access_log.min_status"

	// MetadataTraceB3 (bool) in a listener's filter_metadata["weft"] asks
	// the sidecar to emit B3 headers (single and multi) besides W3C.
	MetadataTraceB3 = "trace_b3"

	// MetadataServices (list of strings) in an inbound cluster's
	// filter_metadata["weft"] names the FQDNs of the services whose ports
	// target that workload port, sorted: the inbound sidecar's
	// destination_service label comes from it.
	MetadataServices = "services"

	// TCP metrics (one series per label set of the request metrics
	// without response_code): connections opened and closed, bytes
	// received from the side that opened the connection and sent back to
	// it. Every proxied TCP stream counts (captured raw TCP, CONNECT
	// tunnels, the egress gateway's tunnels); the sidecars at both ends of
	// one connection count the same bytes.
	MetricTCPOpened        = "weft_tcp_connections_opened_total"
	MetricTCPClosed        = "weft_tcp_connections_closed_total"
	MetricTCPReceivedBytes = "weft_tcp_received_bytes_total"
	MetricTCPSentBytes     = "weft_tcp_sent_bytes_total"

	// TracingDefaultSamplingRate is the mesh default for requests that
	// arrive without a sampling decision.
	TracingDefaultSamplingRate = 0.01
)

// HeaderSourceWorkload carries the calling sidecar's workload
// (<name>.<namespace>) to the peer's inbound sidecar, which trusts it only
// on an mTLS connection (for the source_workload metric label) and removes
// it before the app.
const HeaderSourceWorkload = "x-weft-source-workload"

// OTLPTracesURL is the OTLP/HTTP trace export URL of the collector at
// endpoint (host:port, meshconfig.Tracing.Endpoint).
func OTLPTracesURL(endpoint string) string { return "http://" + endpoint + OTLPTracesPath }
