package translate

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
)

// egress adds what the Egress contract of docs/architecture.md asks for:
// a virtual host per ExternalService port routing to the egress gateway's
// cluster, the ALLOW_ANY passthrough, and on a gateway workload the egress
// table in the metadata of its gateway filter chains.
func (b *builder) egress(res *Resources, out *route.RouteConfiguration) error {
	gw, gwCluster, ok := b.egressGateway(res)
	if ok {
		tbl, err := Table(b.state, b.mc.TrustDomain, b.mc.ClusterDomain)
		if err != nil {
			return err
		}
		for _, d := range tbl.Destinations {
			routes, err := b.vhostRoutes(gw, mesh.PortEgressGateway, gwCluster)
			if err != nil {
				return err
			}
			vh := &route.VirtualHost{
				Name:    mesh.VirtualHostEgressPrefix + d.Name + ":" + strconv.FormatUint(uint64(d.Port), 10),
				Domains: egressDomains(d.Hosts, d.Protocol, d.Port),
				Routes:  routes,
			}
			if d.Protocol == egress.ProtocolTCP && len(d.Addresses) > 0 {
				vh.Metadata = egressAddresses(d.Addresses, d.Port)
			}
			out.VirtualHosts = append(out.VirtualHosts, vh)
		}
	}
	if b.mc.OutboundPolicy == meshconfig.OutboundAllowAny {
		res.Clusters = append(res.Clusters, &cluster.Cluster{
			Name:                 mesh.ClusterPassthrough,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
			LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
			ConnectTimeout:       durationpb.New(b.mc.ConnectTimeout.Duration),
		})
		out.VirtualHosts = append(out.VirtualHosts, &route.VirtualHost{
			Name:    mesh.VirtualHostAllowAny,
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:  "default",
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: mesh.ClusterPassthrough},
					Timeout:          durationpb.New(0),
					RetryPolicy:      &route.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(0)},
				}},
			}},
		})
	}
	if b.isEgressGateway(gw) {
		return b.gatewayTable(res)
	}
	return nil
}

// egressGateway finds the gateway Service's port and checks that this
// proxy has its cluster (an egress-isolated proxy may not).
func (b *builder) egressGateway(res *Resources) (model.Service, string, bool) {
	svc, ok := b.state.Service(mesh.EgressGatewayNamespace, mesh.EgressGatewayService)
	if !ok {
		return svc, "", false
	}
	name := mesh.OutboundClusterName(mesh.PortEgressGateway, mesh.ServiceHost(svc.Name, svc.Namespace, b.mc.ClusterDomain))
	has := slices.ContainsFunc(res.Clusters, func(c *cluster.Cluster) bool { return c.GetName() == name })
	return svc, name, has
}

// isEgressGateway reports whether this proxy is one of the gateway's
// endpoints.
func (b *builder) isEgressGateway(gw model.Service) bool {
	if b.w.Namespace != gw.Namespace {
		return false
	}
	for _, p := range gw.Ports {
		if p.Port != mesh.PortEgressGateway {
			continue
		}
		for _, ep := range p.Endpoints {
			if ep.Workload == b.w.Name {
				return true
			}
		}
	}
	return false
}

// egressDomains: host:port for every host (wildcards as *.suffix:port),
// and the bare host for an HTTP port 80.
func egressDomains(hosts []string, protocol string, number uint32) []string {
	port := ":" + strconv.FormatUint(uint64(number), 10)
	var out []string
	for _, h := range hosts {
		h = egress.NormalizeHost(h)
		if protocol == egress.ProtocolHTTP && number == 80 {
			out = append(out, h)
		}
		out = append(out, h+port)
	}
	return out
}

// DestinationName names an external destination in the gateway's table,
// its metrics and the egress virtual hosts: "<ns>/<name>" for an
// ExternalService, "service/<ns>/<name>" for a Service of type
// ExternalName (the two kinds may share a namespace/name).
func DestinationName(es model.ExternalService) string {
	if es.ExternalName != "" {
		return "service/" + es.Namespace + "/" + es.Name
	}
	return es.Namespace + "/" + es.Name
}

// externalNameAliases are the mesh names of a Service of type
// ExternalName: <name>.<ns>, <name>.<ns>.svc and the FQDN. The bare <name>
// is not one: the gateway serves every namespace and could not qualify it.
func externalNameAliases(es model.ExternalService, clusterDomain string) []string {
	return []string{
		es.Name + "." + es.Namespace,
		es.Name + "." + es.Namespace + ".svc",
		mesh.ServiceHost(es.Name, es.Namespace, clusterDomain),
	}
}

// egressAddresses is the Weft metadata of a TCP egress virtual host: its
// addresses as prefixes with the port ("<cidr>:<port>"), which the
// sidecar matches CONNECT targets against (an IP is its /32 or /128).
func egressAddresses(addrs []string, port uint32) *core.Metadata {
	var vals []*structpb.Value
	p := strconv.FormatUint(uint64(port), 10)
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue // the registry validated them
			}
			pfx = netip.PrefixFrom(ip, ip.BitLen())
		}
		vals = append(vals, structpb.NewStringValue(net.JoinHostPort(pfx.Masked().String(), p)))
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{
		mesh.MetadataEgressAddresses: structpb.NewListValue(&structpb.ListValue{Values: vals}),
	}}}}
}

// Table builds the egress gateway's table from the state (pure; exported
// for weftctl and tests). A Service of type ExternalName gets its mesh
// names as hosts besides its external name, except a name:port that an
// ExternalService already claims (the ExternalService keeps it: two
// claims would make the gateway refuse the whole table).
func Table(state model.State, trustDomain, clusterDomain string) (egress.Table, error) {
	var t egress.Table
	claimed := map[string]bool{}
	for _, es := range state.Egress {
		if es.ExternalName != "" {
			continue
		}
		for _, p := range es.Ports {
			for _, h := range es.Hosts {
				claimed[egress.NormalizeHost(h)+":"+strconv.FormatUint(uint64(p.Number), 10)] = true
			}
		}
	}
	for _, es := range state.Egress {
		for _, p := range es.Ports {
			hosts := slices.Clone(es.Hosts)
			if es.ExternalName != "" {
				for _, a := range externalNameAliases(es, clusterDomain) {
					if !claimed[a+":"+strconv.FormatUint(uint64(p.Number), 10)] {
						hosts = append(hosts, a)
					}
				}
			}
			d := egress.Destination{
				Name:           DestinationName(es),
				Hosts:          hosts,
				ExternalName:   es.ExternalName,
				Port:           p.Number,
				Protocol:       p.Protocol,
				TargetPort:     p.TargetPort,
				OriginateTLS:   p.OriginateTLS,
				Resolution:     es.Resolution,
				Endpoints:      slices.Clone(es.Endpoints),
				Addresses:      slices.Clone(es.Addresses),
				CACertificates: es.CACertificates,
				MaxConnections: es.MaxConnections,
			}
			if p.Protocol == egress.ProtocolHTTP {
				if err := setResilience(&d, es.Policy); err != nil {
					return t, fmt.Errorf("egress table: %s: %w", d.Name, err)
				}
			}
			for _, r := range es.Allow {
				if len(r.Ports) > 0 && !slices.Contains(r.Ports, p.Number) {
					continue
				}
				var pr []string
				pr = append(pr, r.Principals...)
				for _, ns := range r.Namespaces {
					pr = append(pr, "spiffe://"+trustDomain+"/ns/"+ns+"/sa/*")
				}
				for _, sa := range r.ServiceAccounts {
					ns, name, _ := strings.Cut(sa, "/")
					pr = append(pr, mesh.SPIFFEID(trustDomain, ns, name))
				}
				rule := egress.Rule{Principals: pr}
				if p.Protocol == egress.ProtocolHTTP {
					rule.Methods, rule.Paths = slices.Clone(r.Methods), slices.Clone(r.Paths)
				}
				d.Rules = append(d.Rules, rule)
			}
			t.Destinations = append(t.Destinations, d)
		}
	}
	slices.SortStableFunc(t.Destinations, func(a, b egress.Destination) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port))
	})
	return t, nil
}

// setResilience writes on an HTTP destination what a mesh Service with
// the same TrafficPolicy gets on its routes and cluster (resilience.go):
// timeout, retry_policy (without the previous-hosts predicate: the gateway
// tries the external addresses in order, it does not pick among them),
// circuit_breakers and outlier_detection (one breaker for the whole
// destination). pol nil: the defaults.
func setResilience(d *egress.Destination, pol *model.TrafficPolicy) error {
	var tp model.TrafficPolicy
	if pol != nil {
		tp = *pol
	}
	b := &builder{}
	rp, err := b.retryPolicy(defaultRetry(tp))
	if err != nil {
		return err
	}
	rp.RetryHostPredicate, rp.HostSelectionRetryMaxAttempts = nil, 0
	c := &cluster.Cluster{}
	b.applyPolicy(c, tp)
	d.Timeout = requestTimeout(tp).String()
	d.RetryNonIdempotent = tp.Retry != nil && tp.Retry.NonIdempotent
	for _, x := range []struct {
		m   proto.Message
		out *json.RawMessage
	}{{rp, &d.RetryPolicy}, {c.GetCircuitBreakers(), &d.CircuitBreakers}, {c.GetOutlierDetection(), &d.OutlierDetection}} {
		data, err := protojson.Marshal(x.m)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			return err
		}
		*x.out = buf.Bytes()
	}
	return nil
}

// gatewayTable puts the egress table on the gateway's filter chains for
// mesh.PortEgressGateway (Weft metadata "weft"."egress").
func (b *builder) gatewayTable(res *Resources) error {
	tbl, err := Table(b.state, b.mc.TrustDomain, b.mc.ClusterDomain)
	if err != nil {
		return err
	}
	s, err := tableStruct(tbl)
	if err != nil {
		return err
	}
	for _, l := range res.Listeners {
		if l.GetName() != mesh.ListenerInbound {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != mesh.PortEgressGateway {
				continue
			}
			setChainMetadata(fc, s)
		}
	}
	return nil
}

func setChainMetadata(fc *listener.FilterChain, s *structpb.Struct) {
	if fc.Metadata == nil {
		fc.Metadata = &core.Metadata{}
	}
	if fc.Metadata.FilterMetadata == nil {
		fc.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	weft := fc.Metadata.FilterMetadata[mesh.MetadataNamespace]
	if weft == nil {
		weft = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		fc.Metadata.FilterMetadata[mesh.MetadataNamespace] = weft
	}
	weft.Fields[mesh.MetadataEgress] = structpb.NewStructValue(s)
}

// tableStruct converts the table to a Struct through its JSON form.
func tableStruct(t egress.Table) (*structpb.Struct, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("egress table: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("egress table: %w", err)
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("egress table: %w", err)
	}
	return s, nil
}
