package translate

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

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
	mc    meshconfig.Config // with defaults and the state's telemetry
	base  meshconfig.Config // as NewIndex got it (Next starts from it)

	mu         sync.Mutex
	ports      []outboundPort // every TCP service port, in state order (nil until first needed)
	scopes     map[string]*egressScope
	selected   map[string]*scopeSelection
	outbound   map[outboundKey]*outboundPair
	vhosts     map[vhostKey]vhostEntry
	prev       *reuse
	egressRBAC map[string][]*hcm.HttpFilter
	outFilter  map[[3]string]*listener.Filter
	// valid holds the objects that passed ValidateAll, and the decoded
	// HttpConnectionManager of typed configs (by their Any).
	valid map[proto.Message]*hcm.HttpConnectionManager
	// inboundSvcs: the service FQDNs (sorted) that target each workload
	// port, made on first use for every workload at once.
	inboundSvcs map[inboundKey][]string
	// built: by node id, what Build returned (the next state's Index
	// starts from it after an address-only change: incremental.go).
	built      map[string]builtResult
	portByName map[string]int // index in ports by cluster name
}

type inboundKey struct {
	workload, namespace string
	port                uint32
}

// scopeSelection is, for one egress scope, the indexes in Index.ports of
// the ports whose virtual hosts the proxy gets and of those its routes use.
type scopeSelection struct {
	reached, used []int
}

type outboundKey struct {
	cluster, scope string
	locality       model.Locality
}

type outboundPair struct {
	cluster *cluster.Cluster
	cla     *endpoint.ClusterLoadAssignment
	err     error
	// what they were made from (Next reuses them when it is the same)
	eps []model.Endpoint
	pol model.TrafficPolicy
}

// vhostEntry is a memoized virtual host and the service it was made for.
type vhostEntry struct {
	vh                  *route.VirtualHost
	name, ns, clusterIP string
}

// reuse is what an Index may take over from the previous state's Index.
type reuse struct {
	outbound map[outboundKey]*outboundPair
	vhosts   map[vhostKey]vhostEntry // nil: routes or policies changed
	valid    map[proto.Message]*hcm.HttpConnectionManager
	// After an address-only change (else nil): the outbound clusters
	// whose endpoints changed, and the previous results and egress scopes
	// (incremental.go).
	changed map[string]bool
	built   map[string]builtResult
	scopes  map[string]*egressScope
}

type vhostKey struct {
	cluster string
	local   bool // the proxy is in the service's namespace
}

// NewIndex prepares state for Build calls with the mesh config mc (unset
// fields take their defaults; the state's telemetry overrides mc's).
func NewIndex(state model.State, mc meshconfig.Config) *Index {
	base := mc
	mc = mc.WithDefaults()
	if state.Telemetry != nil {
		mc = mc.WithTelemetry(*state.Telemetry)
	}
	return &Index{
		state: state, mc: mc, base: base,
		scopes:     map[string]*egressScope{},
		outbound:   map[outboundKey]*outboundPair{},
		vhosts:     map[vhostKey]vhostEntry{},
		egressRBAC: map[string][]*hcm.HttpFilter{},
		selected:   map[string]*scopeSelection{},
		outFilter:  map[[3]string]*listener.Filter{},
		valid:      map[proto.Message]*hcm.HttpConnectionManager{},
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

// Next returns the Index of a new state with the same mesh config. Its
// outbound clusters, assignments and virtual hosts are the previous
// index's objects wherever they are made from the same inputs, so that
// consumers that cache per object (hashes, marshalled bytes) redo only
// what the change touched. When the new state differs only in workload
// and endpoint addresses (an endpoint change), Build gives a workload
// built by x its previous result, the same *Resources when none of its
// clusters' endpoints changed, else with only those clusters and
// assignments rebuilt (incremental.go). It does not retain x.
func (x *Index) Next(state model.State) *Index {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := NewIndex(state, x.base)
	if state.Telemetry != nil || x.state.Telemetry != nil {
		return n // the state's telemetry changes mc: start afresh
	}
	n.prev = &reuse{outbound: x.outbound, valid: x.valid}
	if reflect.DeepEqual(state.Routes, x.state.Routes) && reflect.DeepEqual(state.Policies, x.state.Policies) {
		n.prev.vhosts = x.vhosts
	}
	if changed, ok := addressMoves(x.state, state, n.mc.ClusterDomain); ok {
		n.prev.changed, n.prev.built, n.prev.scopes = changed, x.built, x.scopes
	}
	return n
}

// outboundPorts lists every TCP service port with its cluster name.
func (x *Index) outboundPorts() []outboundPort {
	if x.ports != nil {
		return x.ports
	}
	x.ports = []outboundPort{}
	for _, svc := range x.state.Services {
		host := mesh.ServiceHost(svc.Name, svc.Namespace, x.mc.ClusterDomain)
		for _, port := range svc.Ports {
			if port.Protocol != model.ProtocolTCP {
				continue
			}
			x.ports = append(x.ports, outboundPort{svc: svc, port: port.Port, name: mesh.OutboundClusterName(port.Port, host), eps: port.Endpoints})
		}
	}
	return x.ports
}

// allPorts is 0..n-1.
func allPorts(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// scopePorts returns the indexes in outboundPorts of the ports whose
// virtual hosts the proxy gets (those its scope reaches) and of the ports
// whose clusters it gets (those the routes of those virtual hosts use);
// every port for a proxy that is not egress-isolated.
func (b *builder) scopePorts(sc *egressScope, key string) (reached, used []int, err error) {
	ports := b.idx.outboundPorts()
	if sc == nil {
		all := allPorts(len(ports))
		return all, all, nil
	}
	if sel, ok := b.idx.selected[key]; ok {
		return sel.reached, sel.used, nil
	}
	sel := &scopeSelection{}
	rc := &route.RouteConfiguration{}
	for i, p := range ports {
		if sc.reaches(p.name) {
			sel.reached = append(sel.reached, i)
			vh, err := b.vhost(p.svc, p.port, p.name)
			if err != nil {
				return nil, nil, err
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	// The routes of a virtual host do not depend on the proxy (only its
	// domains do), so neither does the set of clusters they use.
	u := sc.used(rc)
	for i, p := range ports {
		if u[p.name] {
			sel.used = append(sel.used, i)
		}
	}
	b.idx.selected[key] = sel
	return sel.reached, sel.used, nil
}

// outboundFilter is the outbound listener's HttpConnectionManager filter,
// once per egress scope, namespace and tracing service name.
func (b *builder) outboundFilter() (*listener.Filter, error) {
	_, scopeKey := b.scope()
	key := [3]string{scopeKey, b.w.Namespace, ""}
	if b.mc.Tracing.Endpoint != "" {
		key[2] = b.serviceName() // only tracing uses it
	}
	if f, ok := b.idx.outFilter[key]; ok {
		return f, nil
	}
	f, err := b.outboundHCM()
	if err != nil {
		return nil, err
	}
	b.idx.outFilter[key] = f
	return f, nil
}

// validated runs ValidateAll on m once per object (shared objects are
// checked by the first proxy that has them).
func (x *Index) validated(m validatable) error {
	if _, ok := x.valid[m]; ok {
		return nil
	}
	if x.prev != nil {
		if v, ok := x.prev.valid[m]; ok { // an object reused from the previous state
			x.valid[m] = v
			return nil
		}
	}
	if err := m.ValidateAll(); err != nil {
		return err
	}
	x.valid[m] = nil
	return nil
}

// hcmOf decodes and validates an HttpConnectionManager typed config once
// per object (the outbound one is shared: outboundFilter).
func (x *Index) hcmOf(a *anypb.Any) (*hcm.HttpConnectionManager, error) {
	if m := x.valid[a]; m != nil {
		return m, nil
	}
	m, err := decodeHCM(a)
	if err != nil {
		return nil, err
	}
	x.valid[a] = m
	return m, nil
}

// State is the state the index was made from.
func (x *Index) State() model.State { return x.state }

// Build translates the state into the resources of the proxy of workload w
// (see the package Build).
func (x *Index) Build(w model.Workload) (*Resources, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := &builder{state: x.state, w: w, mc: x.mc, idx: x}
	res, ok := x.rebuild(b)
	if !ok {
		var err error
		b.byAddress = false
		if res, err = build(b); err != nil {
			return nil, err
		}
	}
	if x.built == nil {
		x.built = map[string]builtResult{}
	}
	x.built[w.NodeID()] = builtResult{w: w, res: res, byAddress: b.byAddress}
	return res, nil
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
		if p := b.idx.prev; p != nil && p.changed != nil && p.scopes[key] != nil {
			sc, ok = p.scopes[key].next(b.state, b.idx.outboundPorts(), p.changed)
		}
		if !ok {
			sc = b.egressScope()
		}
		b.idx.scopes[key] = sc
	}
	if sc != nil && sc.filter.byAddress {
		b.byAddress = true
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
	if !ok && b.idx.prev != nil {
		if old := b.idx.prev.outbound[key]; old != nil && old.err == nil && slices.Equal(old.eps, eps) && reflect.DeepEqual(old.pol, pol) {
			p, ok = old, true
			b.idx.outbound[key] = p
		}
	}
	if !ok {
		p = &outboundPair{eps: eps, pol: pol}
		p.cluster, p.err = b.outboundCluster(name, pol)
		if p.err == nil {
			setServiceMetadata(p.cluster, mesh.ServiceHost(svc.Name, svc.Namespace, b.mc.ClusterDomain), svc.ClusterIP)
		}
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
	if e, ok := b.idx.vhosts[key]; ok {
		return e.vh, nil
	}
	if b.idx.prev != nil {
		if e, ok := b.idx.prev.vhosts[key]; ok && e.name == svc.Name && e.ns == svc.Namespace && e.clusterIP == svc.ClusterIP {
			b.idx.vhosts[key] = e
			return e.vh, nil
		}
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
	b.idx.vhosts[key] = vhostEntry{vh: vh, name: svc.Name, ns: svc.Namespace, clusterIP: svc.ClusterIP}
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
