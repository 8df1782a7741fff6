package tracing

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	listener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	trace "github.com/weftmesh/weft/api/xdsproto/envoy/config/trace/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/weftmesh/weft/api/xdsproto/envoy/type/v3"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

func listeners(t *testing.T, tr *hcm.HttpConnectionManager_Tracing, b3 bool) map[string]*xdsclient.Listener {
	t.Helper()
	m, err := xdsproto.NewAny(&hcm.HttpConnectionManager{StatPrefix: "outbound", Tracing: tr})
	if err != nil {
		t.Fatal(err)
	}
	l := &listener.Listener{Name: mesh.ListenerOutbound, FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
		Name: "hcm", ConfigType: &listener.Filter_TypedConfig{TypedConfig: m},
	}}}}}
	if b3 {
		l.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{mesh.MetadataTraceB3: structpb.NewBoolValue(true)}}}}
	}
	return map[string]*xdsclient.Listener{mesh.ListenerOutbound: {Name: mesh.ListenerOutbound, Resource: l}}
}

func otel(t *testing.T, name string, m proto.Message, rate float64) *hcm.HttpConnectionManager_Tracing {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return &hcm.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: rate * 100},
		Provider:       &trace.Tracing_Http{Name: name, ConfigType: &trace.Tracing_Http_TypedConfig{TypedConfig: a}},
	}
}

func TestParse(t *testing.T) {
	otlp := func(uri string) *trace.OpenTelemetryConfig {
		return &trace.OpenTelemetryConfig{
			HttpService: &core.HttpService{HttpUri: &core.HttpUri{Uri: uri, HttpUpstreamType: &core.HttpUri_Cluster{Cluster: mesh.OTLPCluster}, Timeout: durationpb.New(time.Second)}},
			ServiceName: "order.shop",
		}
	}
	good := otlp(mesh.OTLPTracesURL("127.0.0.1:4318"))
	grpc := &trace.OpenTelemetryConfig{
		GrpcService: &core.GrpcService{TargetSpecifier: &core.GrpcService_GoogleGrpc_{GoogleGrpc: &core.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:4317", StatPrefix: "otlp"}}},
		ServiceName: "order.shop",
	}
	tests := []struct {
		name    string
		tr      *hcm.HttpConnectionManager_Tracing
		b3      bool
		want    Config
		wantErr bool
	}{
		{name: "off", want: Config{}},
		{name: "off ignores b3", b3: true, want: Config{}},
		{name: "otel", tr: otel(t, mesh.TracerOpenTelemetry, good, 0.25), b3: true, want: Config{Endpoint: "http://127.0.0.1:4318/v1/traces", Rate: 0.25, B3: true, ServiceName: "order.shop"}},
		{name: "OTLP/gRPC refused", tr: otel(t, mesh.TracerOpenTelemetry, grpc, 1), wantErr: true},
		{name: "https refused", tr: otel(t, mesh.TracerOpenTelemetry, otlp("https://collector:4318/v1/traces"), 1), wantErr: true},
		{name: "no host refused", tr: otel(t, mesh.TracerOpenTelemetry, otlp("http:///v1/traces"), 1), wantErr: true},
		{name: "zipkin refused", tr: otel(t, "envoy.tracers.zipkin", good, 1), wantErr: true},
		{name: "no target refused", tr: otel(t, mesh.TracerOpenTelemetry, &trace.OpenTelemetryConfig{ServiceName: "x"}, 1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(listeners(t, tc.tr, tc.b3))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
