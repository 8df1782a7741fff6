package translate

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
)

// Index is one state prepared for translating many proxies: the control
// plane translates every connected proxy shape on every push, and most of
// a proxy's resources do not depend on the proxy. Index.Build(w) returns
// exactly what Build(state, w, mc) returns; it memoizes the parts that
// depend only on the state and on a few properties of the proxy, and
// gives every proxy that shares them the same objects:
//
//   - the egress scope (what an egress-isolated proxy may reach), by the
//     set of egress NetworkPolicies that select the proxy;
//   - each outbound cluster and its ClusterLoadAssignment, by cluster name
//     and egress scope (and the proxy's locality when the Service's
//     TrafficPolicy is locality-aware);
//   - each outbound virtual host, by cluster name and whether the proxy is
//     in the Service's namespace (the short host names);
//   - the egress RBAC filter of the outbound listener, by egress scope and
//     namespace.
//
// The shared objects must be treated as read-only by every caller (the
// snapshot cache only marshals them). An Index is safe for concurrent use;
// Build holds its lock.
type Index struct {
	state model.State
	mc    meshconfig.Config

	mu         sync.Mutex
	scopes     map[string]*egressScope
	outbound   map[outboundKey]*outboundPair
	vhosts     map[vhostKey]*route.VirtualHost
	egressRBAC map[string][]*hcm.HttpFilter
	// inboundSvcs: the service FQDNs (sorted) that target each workload
	// port, made on first use for every workload at once.
	inboundSvcs map[inboundKey][]string
}

type inboundKey struct {
	workload, namespace string
	port                uint32
}

type outboundKey struct {
	cluster, scope string
	locality       model.Locality
}

type outboundPair struct {
	cluster *cluster.Cluster
	cla     *endpoint.ClusterLoadAssignment
	err     error
}

type vhostKey struct {
	cluster string
	local   bool // the proxy is in the service's namespace
}

// NewIndex prepares state for Build calls with the mesh config mc (unset
// fields take their defaults; the state's telemetry overrides mc's).
func NewIndex(state model.State, mc meshconfig.Config) *Index {
	mc = mc.WithDefaults()
	if state.Telemetry != nil {
		mc = mc.WithTelemetry(*state.Telemetry)
	}
	return &Index{
		state: state, mc: mc,
		scopes:     map[string]*egressScope{},
		outbound:   map[outboundKey]*outboundPair{},
		vhosts:     map[vhostKey]*route.VirtualHost{},
		egressRBAC: map[string][]*hcm.HttpFilter{},
	}
}

// servicesOf returns the FQDNs of the services whose ports target the
// workload's port, sorted (the inbound cluster's services metadata).
func (x *Index) servicesOf(name, namespace string, port uint32) []string {
	if x.inboundSvcs == nil {
		m := map[inboundKey][]string{}
		for _, svc := range x.state.Services {
			host := mesh.ServiceHost(svc.Name, svc.Namespace, x.mc.ClusterDomain)
			for _, sp := range svc.Ports {
				if sp.Protocol != model.ProtocolTCP {
					continue
				}
				for _, ep := range sp.Endpoints {
					if ep.Workload == "" {
						continue
					}
					k := inboundKey{ep.Workload, ep.Namespace, ep.Port}
					if hs := m[k]; len(hs) == 0 || hs[len(hs)-1] != host {
						m[k] = append(hs, host)
					}
				}
			}
		}
		for k, hs := range m {
			slices.Sort(hs)
			m[k] = slices.Compact(hs)
		}
		x.inboundSvcs = m
	}
	return x.inboundSvcs[inboundKey{name, namespace, port}]
}

// State is the state the index was made from.
func (x *Index) State() model.State { return x.state }

// Build translates the state into the resources of the proxy of workload w
// (see the package Build).
func (x *Index) Build(w model.Workload) (*Resources, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return build(&builder{state: x.state, w: w, mc: x.mc, idx: x})
}

// scopeKey names the set of egress NetworkPolicies that select w ("" when
// none does: w is not egress-isolated).
func (b *builder) scopeKey() string {
	var k strings.Builder
	for i, np := range b.state.Authz.NetworkPolicies {
		if np.Egress && np.Selects(b.w) {
			k.WriteString(strconv.Itoa(i))
			k.WriteByte(',')
		}
	}
	return k.String()
}

// scope returns the proxy's egress scope (nil when not egress-isolated),
// computed once per set of selecting policies.
func (b *builder) scope() (*egressScope, string) {
	key := b.scopeKey()
	if key == "" {
		return nil, ""
	}
	sc, ok := b.idx.scopes[key]
	if !ok {
		sc = b.egressScope()
		b.idx.scopes[key] = sc
	}
	return sc, key
}

// outboundPair returns the outbound cluster and assignment of a service
// port for the proxy's scope.
func (b *builder) outboundPair(svc model.Service, name, scopeKey string, eps []model.Endpoint) (*cluster.Cluster, *endpoint.ClusterLoadAssignment, error) {
	pol := b.policy(svc.Namespace, svc.Name)
	key := outboundKey{cluster: name, scope: scopeKey}
	if pol.LocalityAware {
		key.locality = b.w.Locality
	}
	p, ok := b.idx.outbound[key]
	if !ok {
		p = &outboundPair{}
		p.cluster, p.err = b.outboundCluster(name, pol)
		if p.err == nil {
			p.cluster.TransportSocket, p.err = b.upstreamTLS(eps)
		}
		if p.err == nil {
			p.cla = b.loadAssignment(name, eps)
		}
		b.idx.outbound[key] = p
	}
	return p.cluster, p.cla, p.err
}

// vhost returns the outbound virtual host of a service port.
func (b *builder) vhost(svc model.Service, port uint32, name string) (*route.VirtualHost, error) {
	key := vhostKey{cluster: name, local: svc.Namespace == b.w.Namespace}
	if vh, ok := b.idx.vhosts[key]; ok {
		return vh, nil
	}
	routes, err := b.vhostRoutes(svc, port, name)
	if err != nil {
		return nil, err
	}
	vh := &route.VirtualHost{
		Name:    mesh.ServiceHost(svc.Name, svc.Namespace, b.mc.ClusterDomain) + ":" + strconv.FormatUint(uint64(port), 10),
		Domains: b.domains(svc, port),
		Routes:  routes,
	}
	b.idx.vhosts[key] = vh
	return vh, nil
}

// outboundRBAC returns the egress RBAC filters of the outbound listener,
// once per scope and namespace; the caller gets its own slice.
func (b *builder) outboundRBAC() ([]*hcm.HttpFilter, error) {
	sc, key := b.scope()
	if sc == nil {
		return nil, nil
	}
	key += "\x00" + b.w.Namespace
	f, ok := b.idx.egressRBAC[key]
	if !ok {
		var err error
		if f, err = b.egressRBAC(sc); err != nil {
			return nil, err
		}
		b.idx.egressRBAC[key] = f
	}
	return append([]*hcm.HttpFilter(nil), f...), nil
}
