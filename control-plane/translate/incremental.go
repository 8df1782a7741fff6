package translate

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/model"
)

// Incremental translation of an endpoint change.
//
// Most registry changes move endpoints: a pod restarts with a new IP, a
// WorkloadEntry's address changes. When Next sees that the new state
// differs from the previous one only in the addresses of workloads and
// endpoints (addressMoves), a proxy whose own workload did not change
// gets its previous result again with only the outbound clusters and
// assignments of the changed service ports rebuilt, and the very same
// *Resources when none of its clusters changed. That is exactly what a
// full build gives, because the translation reads other workloads' and
// endpoints' addresses in three places only:
//
//   - the assignments (rebuilt here, with the cluster whose upstream TLS
//     is made from the same endpoints);
//   - a NetworkPolicy peer that selects only some workloads of a service
//     account, which names their source addresses (peerPrincipal);
//   - an ipBlock peer of an egress rule, which allows endpoints by address
//     (scopeFilter.byAddress).
//
// A build that met either of the last two is marked byAddress and is never
// reused; the egress scopes are carried over with only the changed ports'
// endpoints filtered again. TestIndexNextIncrementalMatchesBuild holds
// every result equal to Build's.

// builtResult is what Index.Build returned for a workload.
type builtResult struct {
	w         model.Workload
	res       *Resources
	byAddress bool
}

// addressMoves reports whether cur differs from old at most in the
// addresses of workloads and endpoints (in any order within a service
// port); changed then names the outbound clusters of the service ports
// whose endpoints changed.
func addressMoves(old, cur model.State, clusterDomain string) (changed map[string]bool, ok bool) {
	if len(old.Services) != len(cur.Services) || len(old.Workloads) != len(cur.Workloads) ||
		!reflect.DeepEqual(old.Routes, cur.Routes) || !reflect.DeepEqual(old.Policies, cur.Policies) ||
		!reflect.DeepEqual(old.Namespaces, cur.Namespaces) || !reflect.DeepEqual(old.Telemetry, cur.Telemetry) ||
		!reflect.DeepEqual(old.Authz, cur.Authz) || !reflect.DeepEqual(old.Egress, cur.Egress) {
		return nil, false
	}
	for i := range cur.Workloads {
		a, b := old.Workloads[i], cur.Workloads[i]
		a.Address = b.Address
		if !sameWorkload(a, b) {
			return nil, false
		}
	}
	changed = map[string]bool{}
	for i := range cur.Services {
		a, b := &old.Services[i], &cur.Services[i]
		if a.Name != b.Name || a.Namespace != b.Namespace || a.ClusterIP != b.ClusterIP ||
			!maps.Equal(a.Selector, b.Selector) || len(a.Ports) != len(b.Ports) {
			return nil, false
		}
		for j := range b.Ports {
			pa, pb := &a.Ports[j], &b.Ports[j]
			if pa.Name != pb.Name || pa.Port != pb.Port || pa.Protocol != pb.Protocol || pa.TargetPort != pb.TargetPort {
				return nil, false
			}
			if slices.Equal(pa.Endpoints, pb.Endpoints) {
				continue
			}
			if !sameButAddresses(pa.Endpoints, pb.Endpoints) {
				return nil, false
			}
			changed[mesh.OutboundClusterName(pb.Port, mesh.ServiceHost(b.Name, b.Namespace, clusterDomain))] = true
		}
	}
	return changed, true
}

// sameWorkload reports whether a and b are equal in every field.
func sameWorkload(a, b model.Workload) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && a.ServiceAccount == b.ServiceAccount &&
		a.Address == b.Address && maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		slices.Equal(a.Ports, b.Ports) && a.Locality == b.Locality && a.Weight == b.Weight &&
		slices.Equal(a.InboundPorts, b.InboundPorts)
}

// sameButAddresses reports whether a and b hold the same endpoints but for
// their addresses, in any order.
func sameButAddresses(a, b []model.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	count := make(map[model.Endpoint]int, len(a))
	for _, e := range a {
		e.Address = ""
		count[e]++
	}
	for _, e := range b {
		e.Address = ""
		if count[e] == 0 {
			return false
		}
		count[e]--
	}
	return true
}

// rebuild returns the workload's previous result for an address-only
// change, with its changed outbound clusters and assignments rebuilt; ok
// is false when a full build is needed. x.mu is held.
func (x *Index) rebuild(b *builder) (res *Resources, ok bool) {
	p := x.prev
	if p == nil || p.changed == nil {
		return nil, false
	}
	e, found := p.built[b.w.NodeID()]
	if !found || e.byAddress || !sameWorkload(e.w, b.w) {
		return nil, false
	}
	for i, c := range e.res.Clusters {
		name := c.GetName()
		if !p.changed[name] {
			continue
		}
		op, found := x.port(name)
		if !found {
			return nil, false
		}
		sc, key := b.scope()
		if b.byAddress {
			return nil, false
		}
		cl, cla, err := b.outboundPair(op.svc, name, key, sc.scopedEndpoints(name, op.eps))
		if err != nil || x.validated(cl) != nil || x.validated(cla) != nil {
			return nil, false // the full build reports it
		}
		if res == nil {
			res = &Resources{
				Listeners: e.res.Listeners, Routes: e.res.Routes,
				Clusters: slices.Clone(e.res.Clusters), Endpoints: slices.Clone(e.res.Endpoints),
			}
		}
		j, found := slices.BinarySearchFunc(res.Endpoints, name, func(a *endpoint.ClusterLoadAssignment, n string) int {
			return strings.Compare(a.GetClusterName(), n)
		})
		if !found {
			return nil, false
		}
		res.Clusters[i], res.Endpoints[j] = cl, cla
	}
	if res == nil {
		return e.res, true // none of its clusters changed: the same object
	}
	return res, true
}

// port returns the outbound port of a cluster name. x.mu is held.
func (x *Index) port(name string) (outboundPort, bool) {
	if x.portByName == nil {
		ports := x.outboundPorts()
		x.portByName = make(map[string]int, len(ports))
		for i, p := range ports {
			x.portByName[p.name] = i
		}
	}
	i, ok := x.portByName[name]
	if !ok {
		return outboundPort{}, false
	}
	return x.ports[i], true
}

// next is the scope in the next state of an address-only change: the
// endpoints of the changed ports filtered again, everything else shared
// (ok is false when it cannot be carried over).
func (sc *egressScope) next(st model.State, ports []outboundPort, changed map[string]bool) (*egressScope, bool) {
	if sc.filter.byAddress {
		return nil, false
	}
	n := &egressScope{endpoints: maps.Clone(sc.endpoints), reached: sc.reached, rules: sc.rules, filter: sc.filter}
	for _, op := range ports {
		if !changed[op.name] {
			continue
		}
		eps := sc.filter.allowed(st, op, nil)
		if (len(eps) > 0) != sc.reached[op.name] {
			return nil, false // cannot happen when only addresses changed
		}
		if len(eps) > 0 {
			n.endpoints[op.name] = eps
		}
	}
	return n, true
}
