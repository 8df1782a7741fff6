package tracing

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	trace "github.com/weftmesh/weft/api/xdsproto/envoy/config/trace/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Config is the tracing of one proxy; the zero value is tracing off.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's trace URL
	// (http://host:4318/v1/traces); empty: off.
	Endpoint string
	// Rate in [0,1] samples requests without a parent decision.
	Rate float64
	// B3 emits B3 headers besides W3C.
	B3 bool
	// ServiceName is the resource service.name of the spans.
	ServiceName string
}

// Enabled reports whether spans are made.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// HCMs returns the HttpConnectionManagers of the listeners, outbound
// first, then inbound chains in order.
func HCMs(ls map[string]*xdsclient.Listener) ([]*hcm.HttpConnectionManager, error) {
	var out []*hcm.HttpConnectionManager
	for _, name := range []string{mesh.ListenerOutbound, mesh.ListenerInbound} {
		l := ls[name]
		if l == nil || l.Resource == nil {
			continue
		}
		for _, fc := range l.Resource.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcm.HttpConnectionManager{}
				if err := xdsproto.UnmarshalAny(f.GetTypedConfig(), m); err != nil {
					return nil, fmt.Errorf("listener %q: filter %q: %w", name, f.GetName(), err)
				}
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// Parse reads the tracing of the accepted listeners: the first
// HttpConnectionManager with tracing decides (they all carry the same), and
// trace_b3 from the outbound (else inbound) listener's metadata. It refuses
// what the sidecar cannot do (the error NACKs the configuration).
func Parse(ls map[string]*xdsclient.Listener) (Config, error) {
	ms, err := HCMs(ls)
	if err != nil {
		return Config{}, fmt.Errorf("tracing: %w", err)
	}
	var cfg Config
	for _, m := range ms {
		t := m.GetTracing()
		if t == nil {
			continue
		}
		c, err := parseTracing(t)
		if err != nil {
			return Config{}, fmt.Errorf("tracing: %w", err)
		}
		if !cfg.Enabled() {
			cfg = c
		}
	}
	for _, name := range []string{mesh.ListenerOutbound, mesh.ListenerInbound} {
		if l := ls[name]; l != nil && l.Resource != nil {
			md := l.Resource.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace]
			if md.GetFields()[mesh.MetadataTraceB3].GetBoolValue() {
				cfg.B3 = true
			}
		}
	}
	if !cfg.Enabled() {
		cfg.B3 = false
	}
	return cfg, nil
}

func parseTracing(t *hcm.HttpConnectionManager_Tracing) (Config, error) {
	p := t.GetProvider()
	if p == nil {
		return Config{}, errors.New("provider is required")
	}
	if p.GetName() != mesh.TracerOpenTelemetry {
		return Config{}, fmt.Errorf("provider %q is not supported (%s)", p.GetName(), mesh.TracerOpenTelemetry)
	}
	oc := &trace.OpenTelemetryConfig{}
	if err := xdsproto.Unpack(p.GetTypedConfig(), oc); err != nil {
		return Config{}, fmt.Errorf("provider %q: %w", p.GetName(), err)
	}
	target, err := otlpURL(oc)
	if err != nil {
		return Config{}, fmt.Errorf("opentelemetry: %w", err)
	}
	rate := 1.0
	if rs := t.GetRandomSampling(); rs != nil {
		rate = rs.GetValue() / 100
	}
	if os := t.GetOverallSampling(); os != nil && os.GetValue() < 100 {
		rate *= os.GetValue() / 100
	}
	rate = min(max(rate, 0), 1)
	return Config{Endpoint: target, Rate: rate, ServiceName: oc.GetServiceName()}, nil
}

// otlpURL is the collector URL of oc: http_service.http_uri.uri, plain
// http with a host (the sidecar exports OTLP/HTTP without TLS). A
// grpc_service (OTLP/gRPC) is refused: the sidecar does not speak it.
func otlpURL(oc *trace.OpenTelemetryConfig) (string, error) {
	if oc.GetGrpcService() != nil {
		return "", errors.New("grpc_service (OTLP/gRPC) is not supported: use http_service (OTLP/HTTP)")
	}
	raw := oc.GetHttpService().GetHttpUri().GetUri()
	if raw == "" {
		return "", errors.New("http_service.http_uri.uri is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("http_service.http_uri.uri: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("http_service.http_uri.uri %q: want http://host:port/path", raw)
	}
	return raw, nil
}
