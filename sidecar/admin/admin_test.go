package admin

import (
	"encoding/json"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	listener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	router "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/router/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := xdsproto.NewAny(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestConfigDumpResolvesTypedConfigs: a listener's filters carry their
// config in Anys of Envoy type URLs, which the dump must render as JSON
// through the trimmed types, not as an error. The test builds its
// resources with the trimmed types only, so that, like the sidecar, it
// does not link go-control-plane's registrations.
func TestConfigDumpResolvesTypedConfigs(t *testing.T) {
	m := &hcm.HttpConnectionManager{
		StatPrefix: "inbound",
		HttpFilters: []*hcm.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &router.Router{})},
		}},
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
			Name: "inbound",
		}},
	}
	l := &listener.Listener{
		Name: mesh.ListenerInbound,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "10.0.0.9", PortSpecifier: &core.SocketAddress_PortValue{PortValue: mesh.PortInbound},
		}}},
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, m)},
		}}}},
	}
	s, err := xdsclient.NewSnapshot([]*listener.Listener{l}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := configDump(s, xdsclient.Status{}, slog.New(slog.DiscardHandler))
	if len(d.Listeners) != 1 {
		t.Fatalf("dump has %d listeners", len(d.Listeners))
	}
	var got struct {
		Error        string `json:"error"`
		Name         string `json:"name"`
		FilterChains []struct {
			Filters []struct {
				TypedConfig map[string]any `json:"typed_config"`
			} `json:"filters"`
		} `json:"filter_chains"`
	}
	if err := json.Unmarshal(d.Listeners[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Error != "" || got.Name != mesh.ListenerInbound || len(got.FilterChains) == 0 || len(got.FilterChains[0].Filters) == 0 {
		t.Fatalf("listener = %s", d.Listeners[0])
	}
	tc := got.FilterChains[0].Filters[0].TypedConfig
	if tc["@type"] != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" || tc["stat_prefix"] != "inbound" {
		t.Errorf("typed_config = %v", tc)
	}
}
