package accesslog

import (
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	accesslogv3 "github.com/weftmesh/weft/api/xdsproto/envoy/config/accesslog/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	stream "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/access_loggers/stream/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/weftmesh/weft/api/xdsproto/envoy/type/v3"
)

func stdout(t *testing.T, json bool) *anypb.Any {
	t.Helper()
	sl := &stream.StdoutAccessLog{}
	if json {
		js, err := structpb.NewStruct(map[string]any{"status": "%RESPONSE_CODE%"})
		if err != nil {
			t.Fatal(err)
		}
		sl.AccessLogFormat = &stream.StdoutAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
			Format: &core.SubstitutionFormatString_JsonFormat{JsonFormat: js},
		}}
	}
	a, err := xdsproto.NewAny(sl)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sampling(num uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_RuntimeFilter{RuntimeFilter: &accesslogv3.RuntimeFilter{
		RuntimeKey: mesh.AccessLogSamplingRuntimeKey, PercentSampled: &typev3.FractionalPercent{Numerator: num, Denominator: typev3.FractionalPercent_MILLION},
	}}}
}

func minStatus(op accesslogv3.ComparisonFilter_Op, v uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &core.RuntimeUInt32{DefaultValue: v}},
	}}}
}

func and(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		name2   string // logger name ("" = stdout)
		json    bool
		filter  *accesslogv3.AccessLogFilter
		none    bool
		want    Config
		wantErr bool
	}{
		{name: "no access log", none: true, want: Config{}},
		{name: "every request", json: true, want: Config{Enabled: true, Rate: 1}},
		{name: "sampled", json: true, filter: sampling(250_000), want: Config{Enabled: true, Rate: 0.25}},
		{name: "min status", json: true, filter: minStatus(accesslogv3.ComparisonFilter_GE, 500), want: Config{Enabled: true, Rate: 1, MinStatus: 500}},
		{name: "both", json: true, filter: and(sampling(500_000), minStatus(accesslogv3.ComparisonFilter_GE, 400)), want: Config{Enabled: true, Rate: 0.5, MinStatus: 400}},
		{name: "other logger", name2: "envoy.access_loggers.file", json: true, wantErr: true},
		{name: "text format", json: false, wantErr: true},
		{name: "status EQ", json: true, filter: minStatus(accesslogv3.ComparisonFilter_EQ, 500), wantErr: true},
		{name: "nested and", json: true, filter: and(and(sampling(1))), wantErr: true},
		{name: "other filter", json: true, filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &hcm.HttpConnectionManager{}
			if !tc.none {
				n := tc.name2
				if n == "" {
					n = mesh.AccessLoggerStdout
				}
				m.AccessLog = []*accesslogv3.AccessLog{{Name: n, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: stdout(t, tc.json)}, Filter: tc.filter}}
			}
			got, err := Parse([]*hcm.HttpConnectionManager{{}, m})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}
