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

	// TracingDefaultSamplingRate is the mesh default for requests that
	// arrive without a sampling decision.
	TracingDefaultSamplingRate = 0.01
)

// HeaderSourceWorkload carries the calling sidecar's workload
// (<name>.<namespace>) to the peer's inbound sidecar, which trusts it only
// on an mTLS connection (for the source_workload metric label) and removes
// it before the app.
const HeaderSourceWorkload = "x-weft-source-workload"
