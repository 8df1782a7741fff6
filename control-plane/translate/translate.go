package translate

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

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
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
)

// Resources are the xDS resources of one proxy, each slice sorted by name.
type Resources struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
}

// httpProtocolOptionsKey is the typed_extension_protocol_options key of
// HttpProtocolOptions: the message's full name.
var httpProtocolOptionsKey = string((&upstreamhttp.HttpProtocolOptions{}).ProtoReflect().Descriptor().FullName())

// Build translates the state into the resources of the proxy of workload w.
// The mesh config supplies the cluster domain (service FQDNs), the trust
// domain (endpoint identities) and the connect timeout; unset fields take
// their defaults. Build is pure and safe for concurrent use.
func Build(state model.State, w model.Workload, mc meshconfig.Config) (*Resources, error) {
	return NewIndex(state, mc).Build(w)
}

// build runs b and checks the result.
func build(b *builder) (*Resources, error) {
	res, err := b.build()
	if err != nil {
		return nil, fmt.Errorf("translate: proxy %s: %w", b.w.NodeID(), err)
	}
	if err := check(res, b.idx.validated, b.idx.hcmOf); err != nil {
		return nil, fmt.Errorf("translate: proxy %s: %w", b.w.NodeID(), err)
	}
	return res, nil
}

type builder struct {
	state model.State
	w     model.Workload
	mc    meshconfig.Config
	idx   *Index // memoized parts shared by the proxies of one state (index.go)
	// byAddress: the result depends on the addresses of other workloads
	// or endpoints than through their assignments (incremental.go).
	byAddress bool
}

// outboundPort is a TCP service port the proxy may get a cluster for.
type outboundPort struct {
	svc  model.Service
	port uint32
	name string
	eps  []model.Endpoint
}

func (b *builder) build() (*Resources, error) {
	res := &Resources{}
	outRoutes := &route.RouteConfiguration{Name: mesh.RouteOutbound}
	scope, scopeKey := b.scope() // nil: not egress-isolated (rbac.go)
	ports := b.idx.outboundPorts()
	reached, used, err := b.scopePorts(scope, scopeKey)
	if err != nil {
		return nil, err
	}
	for _, i := range reached {
		p := ports[i]
		vh, err := b.vhost(p.svc, p.port, p.name)
		if err != nil {
			return nil, err
		}
		outRoutes.VirtualHosts = append(outRoutes.VirtualHosts, vh)
	}
	// An egress-isolated proxy gets only the clusters its routes use
	// (scope.prune): no others are built.
	for _, i := range used {
		p := ports[i]
		c, cla, err := b.outboundPair(p.svc, p.name, scopeKey, scope.scopedEndpoints(p.name, p.eps))
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, cla)
	}
	res.Routes = append(res.Routes, outRoutes)
	scope.prune(res, outRoutes)

	out, err := b.outboundListener()
	if err != nil {
		return nil, err
	}
	in, err := b.inboundListener()
	if err != nil {
		return nil, err
	}
	res.Listeners = []*listener.Listener{in, out}
	for _, port := range b.inboundPorts() {
		c, err := b.inboundCluster(port)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, c)
	}
	if err := b.egress(res, outRoutes); err != nil {
		return nil, err
	}
	sortByName(res.Listeners, (*listener.Listener).GetName)
	sortByName(res.Routes, (*route.RouteConfiguration).GetName)
	sortByName(res.Clusters, (*cluster.Cluster).GetName)
	sortByName(res.Endpoints, (*endpoint.ClusterLoadAssignment).GetClusterName)
	return res, nil
}

func sortByName[T any](s []T, name func(T) string) {
	slices.SortFunc(s, func(a, b T) int {
		switch na, nb := name(a), name(b); {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	})
}

// domains lists every Host an app may use for a service port: <svc>.<ns>,
// <svc>.<ns>.svc and the FQDN, each with ":<port>"; the short <svc> forms
// only from the service's own namespace; the forms without a port only for
// port 80; and <clusterIP>:<port> (and <clusterIP> for port 80) when the
// service has a cluster IP.
func (b *builder) domains(svc model.Service, port uint32) []string {
	names := []string{
		svc.Name + "." + svc.Namespace,
		svc.Name + "." + svc.Namespace + ".svc",
		mesh.ServiceHost(svc.Name, svc.Namespace, b.mc.ClusterDomain),
	}
	if svc.Namespace == b.w.Namespace {
		names = append([]string{svc.Name}, names...)
	}
	if svc.ClusterIP != "" {
		ip := svc.ClusterIP
		if isIPv6(ip) {
			ip = "[" + ip + "]"
		}
		names = append(names, ip)
	}
	p := ":" + strconv.FormatUint(uint64(port), 10)
	var out []string
	for _, n := range names {
		if port == 80 {
			out = append(out, n)
		}
		out = append(out, n+p)
	}
	return out
}

// setServiceMetadata records on an outbound service cluster the service's
// FQDN and virtual IP (filter_metadata["weft"]: mesh.MetadataServiceHost,
// mesh.MetadataServiceAddresses), which the sidecar's DNS proxy answers
// A/AAAA queries from. A headless service (no cluster IP) gets the host
// only.
func setServiceMetadata(c *cluster.Cluster, host, clusterIP string) {
	if c.Metadata == nil {
		c.Metadata = &core.Metadata{}
	}
	if c.Metadata.FilterMetadata == nil {
		c.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	weft := c.Metadata.FilterMetadata[mesh.MetadataNamespace]
	if weft == nil {
		weft = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		c.Metadata.FilterMetadata[mesh.MetadataNamespace] = weft
	}
	weft.Fields[mesh.MetadataServiceHost] = structpb.NewStringValue(host)
	if clusterIP != "" {
		weft.Fields[mesh.MetadataServiceAddresses] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue(clusterIP)}})
	}
}

func isIPv6(ip string) bool {
	for i := 0; i < len(ip); i++ {
		if ip[i] == ':' {
			return true
		}
	}
	return false
}

func prefixRoute(clusterName string) *route.Route {
	return &route.Route{
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
		}},
	}
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func socketAddress(ip string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol:      core.SocketAddress_TCP,
		Address:       ip,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

// typed validates a typed config and packs it into an Any.
func typed(m interface {
	proto.Message
	ValidateAll() error
},
) (*anypb.Any, error) {
	if err := m.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return anypb.New(m)
}

func httpFilters() ([]*hcm.HttpFilter, error) {
	r, err := typed(&router.Router{})
	if err != nil {
		return nil, err
	}
	return []*hcm.HttpFilter{{Name: wellknown.Router, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: r}}}, nil
}

func hcmFilter(m *hcm.HttpConnectionManager) (*listener.Filter, error) {
	filters, err := httpFilters()
	if err != nil {
		return nil, err
	}
	m.HttpFilters = append(m.HttpFilters, filters...)
	a, err := typed(m)
	if err != nil {
		return nil, err
	}
	return &listener.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}, nil
}

func (b *builder) outboundListener() (*listener.Listener, error) {
	f, err := b.outboundFilter()
	if err != nil {
		return nil, err
	}
	return &listener.Listener{
		Name:             mesh.ListenerOutbound,
		Address:          socketAddress(b.w.Address, mesh.PortOutbound),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		Metadata:         b.listenerMetadata(),
		FilterChains:     []*listener.FilterChain{{Filters: []*listener.Filter{f}}},
	}, nil
}

// outboundHCM is the HttpConnectionManager filter of the outbound listener.
func (b *builder) outboundHCM() (*listener.Filter, error) {
	egress, err := b.outboundRBAC()
	if err != nil {
		return nil, err
	}
	m := &hcm.HttpConnectionManager{
		HttpFilters: egress,
		StatPrefix:  mesh.ListenerOutbound,
		CodecType:   hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: mesh.RouteOutbound,
		}},
	}
	if err := b.observe(m); err != nil {
		return nil, err
	}
	return hcmFilter(m)
}

func (b *builder) inboundListener() (*listener.Listener, error) {
	l := &listener.Listener{
		Name:             mesh.ListenerInbound,
		Address:          socketAddress(b.w.Address, mesh.PortInbound),
		TrafficDirection: core.TrafficDirection_INBOUND,
		Metadata:         b.listenerMetadata(),
	}
	for _, port := range b.inboundPorts() {
		name := inboundRouteName(port)
		authz, err := b.inboundRBAC(port)
		if err != nil {
			return nil, err
		}
		m := &hcm.HttpConnectionManager{
			HttpFilters: authz,
			StatPrefix:  name,
			CodecType:   hcm.HttpConnectionManager_AUTO,
			RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
				Name: name,
				VirtualHosts: []*route.VirtualHost{{
					Name:    name,
					Domains: []string{"*"},
					Routes:  []*route.Route{prefixRoute(mesh.InboundClusterName(port))},
				}},
			}},
		}
		if err := b.observe(m); err != nil {
			return nil, err
		}
		f, err := hcmFilter(m)
		if err != nil {
			return nil, err
		}
		chains, err := b.inboundChains(name, port, []*listener.Filter{f})
		if err != nil {
			return nil, err
		}
		l.FilterChains = append(l.FilterChains, chains...)
	}
	return l, nil
}

func inboundRouteName(port uint32) string {
	return mesh.ListenerInbound + "|" + strconv.FormatUint(uint64(port), 10)
}

func (b *builder) protocolOptions(h2 bool) (map[string]*anypb.Any, error) {
	explicit := &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &core.Http1ProtocolOptions{},
		},
	}
	if h2 {
		explicit.ProtocolConfig = &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &core.Http2ProtocolOptions{},
		}
	}
	a, err := typed(&upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	})
	if err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: a}, nil
}

func (b *builder) outboundCluster(name string, pol model.TrafficPolicy) (*cluster.Cluster, error) {
	opts, err := b.protocolOptions(true)
	if err != nil {
		return nil, err
	}
	c := &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(b.mc.ConnectTimeout.Duration),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,

		TypedExtensionProtocolOptions: opts,
	}
	b.applyPolicy(c, pol)
	return c, nil
}

func (b *builder) inboundCluster(port uint32) (*cluster.Cluster, error) {
	opts, err := b.protocolOptions(false)
	if err != nil {
		return nil, err
	}
	name := mesh.InboundClusterName(port)
	return &cluster.Cluster{
		Name:                 name,
		Metadata:             b.inboundServices(port),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(b.mc.ConnectTimeout.Duration),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpoint.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{
				HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: socketAddress(b.w.Address, port),
				}},
			}}}},
		},
		TypedExtensionProtocolOptions: opts,
	}, nil
}

// inboundServices is the inbound cluster's Weft metadata: the FQDNs of
// the services whose ports target this workload's port (the inbound
// sidecar's destination_service label), or nil when none does.
func (b *builder) inboundServices(port uint32) *core.Metadata {
	hosts := b.idx.servicesOf(b.w.Name, b.w.Namespace, port)
	if len(hosts) == 0 {
		return nil
	}
	vals := make([]*structpb.Value, len(hosts))
	for i, h := range hosts {
		vals[i] = structpb.NewStringValue(h)
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{
			mesh.MetadataServices: structpb.NewListValue(&structpb.ListValue{Values: vals}),
		}},
	}}
}

// loadAssignment groups a service port's endpoints by locality (in the
// order of their first appearance in the sorted endpoints' localities).
func (b *builder) loadAssignment(name string, eps []model.Endpoint) *endpoint.ClusterLoadAssignment {
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	groups := map[model.Locality]*endpoint.LocalityLbEndpoints{}
	var order []model.Locality
	for _, ep := range eps {
		g, ok := groups[ep.Locality]
		if !ok {
			g = &endpoint.LocalityLbEndpoints{}
			if ep.Locality != (model.Locality{}) {
				g.Locality = &core.Locality{Region: ep.Locality.Region, Zone: ep.Locality.Zone, SubZone: ep.Locality.SubZone}
			}
			groups[ep.Locality] = g
			order = append(order, ep.Locality)
		}
		g.LbEndpoints = append(g.LbEndpoints, b.lbEndpoint(ep))
	}
	slices.SortFunc(order, func(a, b model.Locality) int {
		switch sa, sb := a.String(), b.String(); {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	for _, l := range order {
		cla.Endpoints = append(cla.Endpoints, groups[l])
	}
	return cla
}

func (b *builder) lbEndpoint(ep model.Endpoint) *endpoint.LbEndpoint {
	weight := ep.Weight
	if weight == 0 {
		weight = 1
	}
	lb := &endpoint.LbEndpoint{
		HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: socketAddress(ep.Address, ep.Port),
		}},
		HealthStatus:        healthStatus(ep.Health()),
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}
	if ep.Sidecar() {
		lb.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
			mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{
				mesh.MetadataTunnelPort: structpb.NewNumberValue(mesh.PortInbound),
				mesh.MetadataWorkload:   structpb.NewStringValue(mesh.NodeID(ep.Workload, ep.Namespace)),
				mesh.MetadataIdentity:   structpb.NewStringValue(ep.Identity(b.mc.TrustDomain)),
			}},
		}}
	}
	return lb
}

func healthStatus(h model.Health) core.HealthStatus {
	switch h {
	case model.Healthy:
		return core.HealthStatus_HEALTHY
	case model.Draining:
		return core.HealthStatus_DRAINING
	default:
		return core.HealthStatus_UNHEALTHY
	}
}

// errInconsistent marks a reference that does not resolve.
var errInconsistent = errors.New("inconsistent resources")
