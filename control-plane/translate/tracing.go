package translate

import (
	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	trace "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	stream "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"
)

// Observability (docs/architecture.md, "Observability contract"): every
// HttpConnectionManager of a proxy carries the same tracing and access_log
// from the mesh config (flags, overridden at run time by the registry's
// mesh ConfigMap: model.State.Telemetry).

// otlpTimeout bounds one OTLP export call.
const otlpTimeout = 1_000_000_000 // 1 s in ns

// serviceName is the tracing service name of the proxy: its app label (or
// workload name) and namespace, so replicas share one service in Jaeger.
func (b *builder) serviceName() string {
	name := b.w.Labels["app"]
	if name == "" {
		name = b.w.Name
	}
	return name + "." + b.w.Namespace
}

// tracing is the HCM tracing, or nil when tracing is off (no endpoint).
func (b *builder) tracing() (*hcm.HttpConnectionManager_Tracing, error) {
	t := b.mc.Tracing
	if t.Endpoint == "" {
		return nil, nil
	}
	cfg, err := typed(&trace.OpenTelemetryConfig{
		HttpService: &core.HttpService{HttpUri: &core.HttpUri{
			Uri:              mesh.OTLPTracesURL(t.Endpoint),
			HttpUpstreamType: &core.HttpUri_Cluster{Cluster: mesh.OTLPCluster},
			Timeout:          durationpb.New(otlpTimeout),
		}},
		ServiceName: b.serviceName(),
	})
	if err != nil {
		return nil, err
	}
	return &hcm.HttpConnectionManager_Tracing{
		RandomSampling:  &typev3.Percent{Value: t.SamplingRate * 100},
		ClientSampling:  &typev3.Percent{Value: 100},
		OverallSampling: &typev3.Percent{Value: 100},
		Provider: &trace.Tracing_Http{
			Name:       mesh.TracerOpenTelemetry,
			ConfigType: &trace.Tracing_Http_TypedConfig{TypedConfig: cfg},
		},
	}, nil
}

// accessLogFields is the json_format of the access log: Weft's fields as
// Envoy command operators (the sidecar writes its own fixed schema with
// these keys).
var accessLogFields = map[string]string{
	"time":                 "%START_TIME%",
	"method":               "%REQ(:METHOD)%",
	"authority":            "%REQ(:AUTHORITY)%",
	"path":                 "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":             "%PROTOCOL%",
	"status":               "%RESPONSE_CODE%",
	"flags":                "%RESPONSE_FLAGS%",
	"route":                "%ROUTE_NAME%",
	"cluster":              "%UPSTREAM_CLUSTER%",
	"upstream":             "%UPSTREAM_HOST%",
	"trace_id":             "%TRACE_ID%",
	"source_identity":      "%DOWNSTREAM_PEER_URI_SAN%",
	"destination_identity": "%UPSTREAM_PEER_URI_SAN%",
	"bytes_received":       "%BYTES_RECEIVED%",
	"bytes_sent":           "%BYTES_SENT%",
	"duration_ms":          "%DURATION%",
	"upstream_duration_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
}

// accessLogs is the HCM access_log, or nil when access logs are off.
func (b *builder) accessLogs() ([]*accesslog.AccessLog, error) {
	a := b.mc.AccessLog
	if !a.Enabled {
		return nil, nil
	}
	fields := make(map[string]any, len(accessLogFields))
	for k, v := range accessLogFields {
		fields[k] = v
	}
	js, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, err
	}
	cfg, err := typed(&stream.StdoutAccessLog{AccessLogFormat: &stream.StdoutAccessLog_LogFormat{
		LogFormat: &core.SubstitutionFormatString{Format: &core.SubstitutionFormatString_JsonFormat{JsonFormat: js}},
	}})
	if err != nil {
		return nil, err
	}
	var parts []*accesslog.AccessLogFilter
	if a.SamplingRate > 0 && a.SamplingRate < 1 {
		parts = append(parts, &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_RuntimeFilter{
			RuntimeFilter: &accesslog.RuntimeFilter{
				RuntimeKey: mesh.AccessLogSamplingRuntimeKey,
				PercentSampled: &typev3.FractionalPercent{
					Numerator:   uint32(a.SamplingRate * 1e6),
					Denominator: typev3.FractionalPercent_MILLION,
				},
			},
		}})
	}
	if a.MinStatus > 0 {
		parts = append(parts, &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslog.StatusCodeFilter{Comparison: &accesslog.ComparisonFilter{
				Op:    accesslog.ComparisonFilter_GE,
				Value: &core.RuntimeUInt32{DefaultValue: a.MinStatus, RuntimeKey: mesh.AccessLogStatusRuntimeKey},
			}},
		}})
	}
	al := &accesslog.AccessLog{Name: mesh.AccessLoggerStdout, ConfigType: &accesslog.AccessLog_TypedConfig{TypedConfig: cfg}}
	switch len(parts) {
	case 0:
	case 1:
		al.Filter = parts[0]
	default:
		al.Filter = &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_AndFilter{
			AndFilter: &accesslog.AndFilter{Filters: parts},
		}}
	}
	return []*accesslog.AccessLog{al}, nil
}

// observe sets tracing and access_log on an HCM before it is packed.
func (b *builder) observe(m *hcm.HttpConnectionManager) error {
	t, err := b.tracing()
	if err != nil {
		return err
	}
	logs, err := b.accessLogs()
	if err != nil {
		return err
	}
	m.Tracing, m.AccessLog = t, logs
	return nil
}

// listenerMetadata is the Weft listener metadata (trace_b3), or nil.
func (b *builder) listenerMetadata() *core.Metadata {
	if b.mc.Tracing.Endpoint == "" || !b.mc.Tracing.B3 {
		return nil
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{mesh.MetadataTraceB3: structpb.NewBoolValue(true)}},
	}}
}
