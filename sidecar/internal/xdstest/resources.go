package xdstest

import (
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func socketAddress(ip string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       ip,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func httpConnectionManager(prefix string, m *hcm.HttpConnectionManager) *listener.Filter {
	m.StatPrefix = prefix
	m.HttpFilters = []*hcm.HttpFilter{{
		Name:       wellknown.Router,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})},
	}}
	return &listener.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(m)},
	}
}

// OutboundListener is the "outbound" listener at ip:15001, routing by RDS
// "outbound".
func OutboundListener(ip string) *listener.Listener {
	return &listener.Listener{
		Name:    mesh.ListenerOutbound,
		Address: socketAddress(ip, mesh.PortOutbound),
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{httpConnectionManager("outbound", &hcm.HttpConnectionManager{
				RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
					ConfigSource:    ads(),
					RouteConfigName: mesh.RouteOutbound,
				}},
			})},
		}},
	}
}

// InboundListener is the "inbound" listener at ip:15006 with one filter
// chain per workload port.
func InboundListener(ip string, ports ...uint32) *listener.Listener {
	l := &listener.Listener{Name: mesh.ListenerInbound, Address: socketAddress(ip, mesh.PortInbound)}
	for _, p := range ports {
		name := "inbound|" + strconv.FormatUint(uint64(p), 10)
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{
			Name:             name,
			FilterChainMatch: &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(p)},
			Filters: []*listener.Filter{httpConnectionManager(name, &hcm.HttpConnectionManager{
				RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
					Name: name,
					VirtualHosts: []*route.VirtualHost{{
						Name:    name,
						Domains: []string{"*"},
						Routes:  []*route.Route{PrefixRoute("/", mesh.InboundClusterName(p))},
					}},
				}},
			})},
		})
	}
	return l
}

// PrefixRoute sends every path under prefix to cluster.
func PrefixRoute(prefix, cluster string) *route.Route {
	return &route.Route{
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: prefix}},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}

// ServiceDomains lists every name an app may use for a service port: the
// short <svc> forms only from the service's own namespace, forms without the
// port only for port 80.
func ServiceDomains(svc, ns string, port uint32, sameNamespace bool) []string {
	fqdn := mesh.ServiceHost(svc, ns, mesh.DefaultClusterDomain)
	names := []string{svc + "." + ns, svc + "." + ns + ".svc", fqdn}
	if sameNamespace {
		names = append([]string{svc}, names...)
	}
	var out []string
	p := ":" + strconv.FormatUint(uint64(port), 10)
	for _, n := range names {
		if port == 80 {
			out = append(out, n)
		}
		out = append(out, n+p)
	}
	return out
}

// ServiceVirtualHost is the outbound virtual host of one service port.
func ServiceVirtualHost(svc, ns string, port uint32, sameNamespace bool) *route.VirtualHost {
	fqdn := mesh.ServiceHost(svc, ns, mesh.DefaultClusterDomain)
	return &route.VirtualHost{
		Name:    fqdn + ":" + strconv.FormatUint(uint64(port), 10),
		Domains: ServiceDomains(svc, ns, port, sameNamespace),
		Routes:  []*route.Route{PrefixRoute("/", mesh.OutboundClusterName(port, fqdn))},
	}
}

// OutboundRoute is the "outbound" route configuration.
func OutboundRoute(vhosts ...*route.VirtualHost) *route.RouteConfiguration {
	return &route.RouteConfiguration{Name: mesh.RouteOutbound, VirtualHosts: vhosts}
}

// OutboundCluster is the EDS cluster of a service port.
func OutboundCluster(svc, ns string, port uint32) *cluster.Cluster {
	name := mesh.OutboundClusterName(port, mesh.ServiceHost(svc, ns, mesh.DefaultClusterDomain))
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		ConnectTimeout:       durationpb.New(mesh.DefaultConnectTimeout),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttp.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &core.Http2ProtocolOptions{},
						},
					},
				},
			}),
		},
	}
}

// InboundCluster is the STATIC cluster of a workload port: the app at
// appIP:port.
func InboundCluster(appIP string, port uint32) *cluster.Cluster {
	name := mesh.InboundClusterName(port)
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment:       Assignment(name, Endpoint{IP: appIP, Port: port}),
	}
}

// Endpoint describes one LbEndpoint.
type Endpoint struct {
	IP   string
	Port uint32
	// TunnelPort, when set, says a sidecar fronts the endpoint.
	TunnelPort uint32
	Workload   string
	Identity   string
	Health     core.HealthStatus
}

// Assignment is the ClusterLoadAssignment of cluster.
func Assignment(cluster string, eps ...Endpoint) *endpoint.ClusterLoadAssignment {
	loc := &endpoint.LocalityLbEndpoints{
		Locality:            &core.Locality{Zone: "local"},
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}
	for _, e := range eps {
		health := e.Health
		if health == core.HealthStatus_UNKNOWN {
			health = core.HealthStatus_HEALTHY
		}
		lbe := &endpoint.LbEndpoint{
			HostIdentifier:      &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: socketAddress(e.IP, e.Port)}},
			HealthStatus:        health,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}
		if e.TunnelPort != 0 {
			md, err := structpb.NewStruct(map[string]any{
				mesh.MetadataTunnelPort: float64(e.TunnelPort),
				mesh.MetadataWorkload:   e.Workload,
				mesh.MetadataIdentity:   e.Identity,
			})
			if err != nil {
				panic(err)
			}
			lbe.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{mesh.MetadataNamespace: md}}
		}
		loc.LbEndpoints = append(loc.LbEndpoints, lbe)
	}
	return &endpoint.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpoint.LocalityLbEndpoints{loc}}
}

// MeshRetryPolicy is the retry policy the control plane puts on every mesh
// route (api/mesh's defaults), with a 1 ms base back-off for tests.
func MeshRetryPolicy() *route.RetryPolicy {
	return &route.RetryPolicy{
		RetryOn:                       mesh.DefaultRetryOn,
		NumRetries:                    wrapperspb.UInt32(mesh.DefaultRetryAttempts),
		HostSelectionRetryMaxAttempts: mesh.RetryHostSelectionMaxAttempts,
		RetryHostPredicate:            []*route.RetryPolicy_RetryHostPredicate{{Name: mesh.RetryHostPredicatePreviousHosts}},
		RetryBackOff:                  &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)},
	}
}
