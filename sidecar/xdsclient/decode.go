package xdsclient

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/authz"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/xdsproto"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	endpoint "github.com/weftmesh/weft/api/xdsproto/envoy/config/endpoint/v3"
	listener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	rbacfilter "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/rbac/v3"
	router "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/http/router/v3"
	hcm "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttp "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/upstreams/http/v3"
)

// Type URLs of the resources the client subscribes to (Envoy v3's).
const (
	TypeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	TypeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	TypeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// httpProtocolOptionsKey is the typed_extension_protocol_options key of the
// upstream HTTP protocol options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// unpack unmarshals a into m, the trimmed type of a's Envoy type, and
// checks it against the PGV rules of Envoy's (xdsproto.Unpack).
func unpack(a *anypb.Any, m proto.Message) error { return xdsproto.Unpack(a, m) }

// resourceName returns the name of a resource without validating it, for
// error messages about resources that do not unmarshal or validate.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listener.Listener:
		return r.GetName()
	case *route.RouteConfiguration:
		return r.GetName()
	case *cluster.Cluster:
		return r.GetName()
	case *endpoint.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}

// decodeListener unmarshals and validates one LDS resource.
func decodeListener(a *anypb.Any) (*Listener, error) {
	l := &listener.Listener{}
	if err := unpack(a, l); err != nil {
		return nil, resourceError("listener", resourceName(l), err)
	}
	out := &Listener{Name: l.GetName(), Resource: l}
	if err := func() error {
		sa := l.GetAddress().GetSocketAddress()
		if sa == nil {
			return errors.New("address: must be a socket address")
		}
		if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
			return fmt.Errorf("address: %q is not an IP address", sa.GetAddress())
		}
		if sa.GetPortValue() == 0 {
			return errors.New("address: port_value must be set")
		}
		out.Address = net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
		if l.GetDefaultFilterChain() != nil {
			return errors.New("default_filter_chain: not supported")
		}
		// No chains is valid: the inbound listener of a workload that no
		// service targets serves nothing (every request gets 421).
		// A port has at most one TLS chain and one plaintext chain; the
		// pair (PERMISSIVE) is merged into one FilterChain that serves both.
		type seen struct{ chain, first int } // index in out.Chains, in the listener
		ports := map[uint32]seen{}
		for i, fc := range l.GetFilterChains() {
			chain, err := decodeFilterChain(fc)
			if err != nil {
				return fmt.Errorf("filter chain %d (%q): %w", i, fc.GetName(), err)
			}
			p, dup := ports[chain.DestinationPort]
			if !dup {
				ports[chain.DestinationPort] = seen{len(out.Chains), i}
				out.Chains = append(out.Chains, chain)
				continue
			}
			if err := mergeChains(&out.Chains[p.chain], chain, l.GetFilterChains()[p.first], fc); err != nil {
				if chain.DestinationPort == 0 {
					return fmt.Errorf("filter chain %d (%q): more than one chain matches any port: %w", i, fc.GetName(), err)
				}
				return fmt.Errorf("filter chain %d (%q): destination_port %d is matched by an earlier chain: %w", i, fc.GetName(), chain.DestinationPort, err)
			}
		}
		return nil
	}(); err != nil {
		return nil, resourceError("listener", l.GetName(), err)
	}
	return out, nil
}

func decodeFilterChain(fc *listener.FilterChain) (FilterChain, error) {
	out := FilterChain{Name: fc.GetName()}
	if m := fc.GetFilterChainMatch(); m != nil {
		// Only the destination port and the transport protocol are
		// understood; a chain selected by anything else would catch
		// traffic it was not meant for.
		rest := proto.Clone(m).(*listener.FilterChainMatch)
		rest.DestinationPort = nil
		rest.TransportProtocol = ""
		if !proto.Equal(rest, &listener.FilterChainMatch{}) {
			return out, errors.New("filter_chain_match: only destination_port and transport_protocol are supported")
		}
		out.DestinationPort = m.GetDestinationPort().GetValue()
	}
	tp := fc.GetFilterChainMatch().GetTransportProtocol()
	switch ts := fc.GetTransportSocket(); {
	case tp != "" && tp != TransportProtocolTLS && tp != TransportProtocolRaw:
		return out, fmt.Errorf("filter_chain_match: transport_protocol %q is not supported (%s or %s)", tp, TransportProtocolTLS, TransportProtocolRaw)
	case ts != nil && tp == TransportProtocolRaw:
		return out, errors.New("transport_socket: a raw_buffer chain cannot have a TLS transport socket")
	case ts == nil && tp == TransportProtocolTLS:
		// Accepting TLS without terminating it is not something this
		// sidecar does.
		return out, errors.New("transport_socket: a tls chain needs the TLS transport socket")
	case ts != nil:
		t, err := decodeDownstreamTLS(ts)
		if err != nil {
			return out, err
		}
		out.TLS = t
	default:
		out.Plaintext = true
	}
	if len(fc.GetFilters()) != 1 {
		return out, fmt.Errorf("filters: want exactly one (%s), got %d", "envoy.filters.network.http_connection_manager", len(fc.GetFilters()))
	}
	f := fc.GetFilters()[0]
	tc := f.GetTypedConfig()
	if tc == nil {
		return out, fmt.Errorf("filter %q: typed_config is required", f.GetName())
	}
	m := &hcm.HttpConnectionManager{}
	if tc.GetTypeUrl() != xdsproto.TypeURL(m) {
		return out, fmt.Errorf("filter %q: unsupported network filter %s", f.GetName(), tc.GetTypeUrl())
	}
	if err := unpack(tc, m); err != nil {
		return out, fmt.Errorf("filter %q: %w", f.GetName(), err)
	}
	engine, err := checkHTTPFilters(m.GetHttpFilters())
	if err != nil {
		return out, err
	}
	out.Authz = engine
	switch rs := m.GetRouteSpecifier().(type) {
	case *hcm.HttpConnectionManager_Rds:
		if rs.Rds.GetConfigSource().GetAds() == nil {
			return out, errors.New("rds: config_source must be ads")
		}
		if rs.Rds.GetRouteConfigName() == "" {
			return out, errors.New("rds: route_config_name is required")
		}
		out.RouteName = rs.Rds.GetRouteConfigName()
	case *hcm.HttpConnectionManager_RouteConfig:
		out.Route = rs.RouteConfig
	default:
		return out, errors.New("route_specifier: only rds and route_config are supported")
	}
	return out, nil
}

// checkHTTPFilters accepts the router, RBAC filters before it (compiled
// into the chain's authorization engine: one that does not decode,
// validate or compile NACKs the listener) and optional filters. A required
// filter the sidecar does not implement must not be skipped silently: that
// would fail open.
func checkHTTPFilters(fs []*hcm.HttpFilter) (*authz.Engine, error) {
	routerURL := xdsproto.TypeURL(&router.Router{})
	rbacURL := xdsproto.TypeURL(&rbacfilter.RBAC{})
	haveRouter := false
	var rbac []authz.Filter
	for i, f := range fs {
		if f.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("http filter %d (%q): config_discovery is not supported", i, f.GetName())
		}
		tc := f.GetTypedConfig()
		switch {
		case tc.GetTypeUrl() == routerURL:
			if err := unpack(tc, &router.Router{}); err != nil {
				return nil, fmt.Errorf("http filter %d (%q): %w", i, f.GetName(), err)
			}
			haveRouter = true
		case tc.GetTypeUrl() == rbacURL:
			if haveRouter {
				return nil, fmt.Errorf("http filter %d (%q): an RBAC filter after the router would never run", i, f.GetName())
			}
			c := &rbacfilter.RBAC{}
			if err := unpack(tc, c); err != nil {
				return nil, fmt.Errorf("http filter %d (%q): %w", i, f.GetName(), err)
			}
			rbac = append(rbac, authz.Filter{Name: f.GetName(), Config: c})
		case f.GetIsOptional():
		default:
			return nil, fmt.Errorf("http filter %d (%q): unsupported filter %s", i, f.GetName(), tc.GetTypeUrl())
		}
	}
	if !haveRouter {
		return nil, errors.New("http_filters: the router filter is required")
	}
	engine, err := authz.Compile(rbac)
	if err != nil {
		return nil, err
	}
	return engine, nil
}

// decodeRoute unmarshals and validates one RDS resource.
func decodeRoute(a *anypb.Any) (*route.RouteConfiguration, error) {
	rc := &route.RouteConfiguration{}
	if err := unpack(a, rc); err != nil {
		return nil, resourceError("route", resourceName(rc), err)
	}
	return rc, nil
}

// RouteClusters returns the cluster names a route configuration's routes
// send traffic to, in order of appearance.
func RouteClusters(rc *route.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if c := a.GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				out = append(out, wc.GetName())
			}
		}
	}
	return out
}

// checkRouteClusters fails when a route names a cluster not in clusters.
func checkRouteClusters(rc *route.RouteConfiguration, clusters map[string]*Cluster) error {
	for _, vh := range rc.GetVirtualHosts() {
		for i, r := range vh.GetRoutes() {
			a := r.GetRoute()
			names := []string{a.GetCluster()}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				names = append(names, wc.GetName())
			}
			for _, n := range names {
				if n != "" && clusters[n] == nil {
					return fmt.Errorf("virtual host %q: route %d: cluster %q not found", vh.GetName(), i, n)
				}
			}
		}
	}
	return nil
}

// decodeCluster unmarshals and validates one CDS resource.
func decodeCluster(a *anypb.Any) (*Cluster, error) {
	c := &cluster.Cluster{}
	if err := unpack(a, c); err != nil {
		return nil, resourceError("cluster", resourceName(c), err)
	}
	out := &Cluster{
		Name: c.GetName(), ConnectTimeout: c.GetConnectTimeout().AsDuration(),
		Type: c.GetType(), raw: a.GetValue(),
	}
	out.ServiceHost, out.ServiceAddresses = serviceMetadata(c.GetMetadata())
	if err := func() error {
		if len(c.GetTransportSocketMatches()) > 0 {
			return errors.New("transport_socket_matches: not supported by this sidecar")
		}
		if ts := c.GetTransportSocket(); ts != nil {
			t, err := decodeUpstreamTLS(ts)
			if err != nil {
				return err
			}
			out.TLS = t
		}
		if c.GetType() == cluster.Cluster_ORIGINAL_DST {
			// The ALLOW_ANY passthrough (Egress contract): the request's
			// own destination, nothing to balance.
			if c.GetLbPolicy() != cluster.Cluster_CLUSTER_PROVIDED {
				return errors.New("lb_policy: an ORIGINAL_DST cluster needs CLUSTER_PROVIDED")
			}
			if c.GetLoadAssignment() != nil || c.GetTransportSocket() != nil {
				return errors.New("ORIGINAL_DST: load_assignment and transport_socket are not supported")
			}
			return nil
		}
		if err := checkLB(c); err != nil {
			return err
		}
		if opts, ok := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; ok {
			if err := unpack(opts, &upstreamhttp.HttpProtocolOptions{}); err != nil {
				return fmt.Errorf("typed_extension_protocol_options[%s]: %w", httpProtocolOptionsKey, err)
			}
		}
		if c.GetClusterType() != nil {
			return errors.New("cluster_type: custom cluster types are not supported")
		}
		switch c.GetType() {
		case cluster.Cluster_EDS:
			eds := c.GetEdsClusterConfig()
			if eds.GetEdsConfig().GetAds() == nil {
				return errors.New("eds_cluster_config.eds_config: must be ads")
			}
			out.EDSName = eds.GetServiceName()
			if out.EDSName == "" {
				out.EDSName = c.GetName()
			}
			if c.GetLoadAssignment() != nil {
				return errors.New("load_assignment: not allowed on an EDS cluster")
			}
		case cluster.Cluster_STATIC:
			if c.GetLoadAssignment() == nil {
				return errors.New("load_assignment: required on a STATIC cluster")
			}
			as, err := decodeAssignment(c.GetLoadAssignment())
			if err != nil {
				return fmt.Errorf("load_assignment: %w", err)
			}
			as.inline = c.GetLoadAssignment()
			out.Static = as
		default:
			return fmt.Errorf("type: %s is not supported (EDS and STATIC only)", c.GetType())
		}
		return nil
	}(); err != nil {
		return nil, resourceError("cluster", c.GetName(), err)
	}
	return out, nil
}

// decodeEndpoints unmarshals and validates one EDS resource.
func decodeEndpoints(a *anypb.Any) (*Assignment, error) {
	cla := &endpoint.ClusterLoadAssignment{}
	if err := unpack(a, cla); err != nil {
		return nil, resourceError("endpoints", resourceName(cla), err)
	}
	as, err := decodeAssignment(cla)
	if err != nil {
		return nil, resourceError("endpoints", cla.GetClusterName(), err)
	}
	as.raw = a.GetValue()
	return as, nil
}

// decodeAssignment decodes cla's endpoints (the caller sets where Resource
// finds cla again).
func decodeAssignment(cla *endpoint.ClusterLoadAssignment) (*Assignment, error) {
	if len(cla.GetNamedEndpoints()) > 0 {
		return nil, errors.New("named_endpoints: not supported")
	}
	out := &Assignment{Name: cla.GetClusterName()}
	n := 0
	for _, loc := range cla.GetEndpoints() {
		n += len(loc.GetLbEndpoints())
	}
	if n > 0 {
		out.Endpoints = make([]Endpoint, 0, n) // exactly: kept as long as the assignment
	}
	for li, loc := range cla.GetEndpoints() {
		for ei, lbe := range loc.GetLbEndpoints() {
			ep, err := decodeEndpoint(lbe)
			if err != nil {
				return nil, fmt.Errorf("locality %d endpoint %d: %w", li, ei, err)
			}
			ep.Priority = loc.GetPriority()
			ep.Region, ep.Zone, ep.SubZone = loc.GetLocality().GetRegion(), loc.GetLocality().GetZone(), loc.GetLocality().GetSubZone()
			out.Endpoints = append(out.Endpoints, ep)
		}
	}
	return out, nil
}

func decodeEndpoint(lbe *endpoint.LbEndpoint) (Endpoint, error) {
	var ep Endpoint
	e := lbe.GetEndpoint()
	if e == nil {
		return ep, errors.New("endpoint: required (endpoint_name is not supported)")
	}
	sa := e.GetAddress().GetSocketAddress()
	if sa == nil {
		return ep, errors.New("address: must be a socket address")
	}
	// IP literals only: the data path never resolves names.
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return ep, fmt.Errorf("address: %q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() == 0 {
		return ep, errors.New("address: port_value must be set")
	}
	ep.IP = ip.String()
	ep.Port = sa.GetPortValue()
	ep.Health = lbe.GetHealthStatus()
	ep.Weight = 1
	if w := lbe.GetLoadBalancingWeight(); w != nil {
		ep.Weight = w.GetValue()
	}
	md := lbe.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace]
	if md != nil {
		f := md.GetFields()
		if v, ok := f[mesh.MetadataTunnelPort]; ok {
			p, err := portValue(v)
			if err != nil {
				return ep, fmt.Errorf("metadata %s.%s: %w", mesh.MetadataNamespace, mesh.MetadataTunnelPort, err)
			}
			ep.TunnelPort = p
		}
		ep.Workload = f[mesh.MetadataWorkload].GetStringValue()
		ep.Identity = f[mesh.MetadataIdentity].GetStringValue()
	}
	return ep, nil
}

// serviceMetadata reads a cluster's mesh.MetadataServiceHost and
// mesh.MetadataServiceAddresses (Cluster.ServiceHost, ServiceAddresses).
func serviceMetadata(md *core.Metadata) (host string, addresses []string) {
	f := md.GetFilterMetadata()[mesh.MetadataNamespace].GetFields()
	host = f[mesh.MetadataServiceHost].GetStringValue()
	if list := f[mesh.MetadataServiceAddresses].GetListValue(); list != nil {
		addresses = make([]string, 0, len(list.GetValues()))
		for _, v := range list.GetValues() {
			addresses = append(addresses, v.GetStringValue())
		}
	}
	return host, addresses
}

// portValue reads a port from a Struct value: a whole number, or a decimal
// string, in 1..65535.
func portValue(v *structpb.Value) (uint32, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		n := k.NumberValue
		if n != math.Trunc(n) || n < 1 || n > 65535 {
			return 0, fmt.Errorf("%v is not a port", n)
		}
		return uint32(n), nil
	case *structpb.Value_StringValue:
		n, err := strconv.ParseUint(k.StringValue, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q is not a port", k.StringValue)
		}
		return uint32(n), nil
	}
	return 0, fmt.Errorf("want a number, got %T", v.GetKind())
}

// resourceError names the resource an error is about: `cluster "x": ...`.
func resourceError(kind, name string, err error) error {
	return fmt.Errorf("%s %q: %w", kind, name, err)
}
