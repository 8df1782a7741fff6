package xds

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/translate"
)

// Translation by proxy shape (scale): translate.Build depends on a
// workload's namespace, service account, labels, annotations, ports,
// locality and weight, and on its name and address only in a few places
// (the two listeners' addresses, the inbound clusters' endpoint address,
// the tracing service name when there is no app label, egress-gateway
// membership). Replicas of one Deployment differ only by name and address,
// so the server translates one workload per shape and gives the others
// the same resources with those few fields rewritten: the outbound
// clusters, assignments and routes are shared (the same objects in every
// replica's snapshot, so they cost memory once), and the listeners and
// inbound clusters are cloned. TestShapeMatchesBuild holds this equal to
// translate.Build for every workload of the golden meshes.

// shapeCache is the translations of one state, by shape key, made
// through one translate.Index (so shapes share their outbound clusters,
// assignments and virtual hosts too). A push keeps the previous state's
// entry of a shape whose translation did not change (same hashes), so the
// nodes of that shape see the same *shaped and skip their sync. s.mu
// guards it.
type shapeCache struct {
	state  *model.State
	idx    *translate.Index
	shapes map[string]*shaped
	prev   map[string]*shaped
	hashes *hashCache
}

// shaped is the translation of one shape: its representative workload's
// resources, by type, hashed.
type shaped struct {
	rep    model.Workload
	res    *translate.Resources
	err    error
	byType [numTypes][]types.Resource
	sums   [numTypes]typeSum
	// The snapshots' by-name maps of byType and their delta version
	// maps, made once (snapshotMaps) and shared by the snapshots of every
	// node that has the type unchanged.
	items [numTypes]map[string]types.ResourceWithTTL
	vmaps [numTypes]map[string]string
}

// snapshotMaps returns the by-name map of type i and, when delta (only a
// node with a delta stream reads it), its version map (nil otherwise, and
// not made until a delta node asks).
func (sh *shaped) snapshotMaps(i int, hashes *hashCache, delta bool) (map[string]types.ResourceWithTTL, map[string]string, error) {
	if sh.items[i] == nil {
		sh.items[i] = itemsByName(sh.byType[i], hashes)
	}
	if delta && sh.vmaps[i] == nil {
		vm, err := hashes.versionMap(sh.byType[i])
		if err != nil {
			return nil, nil, err
		}
		sh.vmaps[i] = vm
	}
	return sh.items[i], sh.vmaps[i], nil
}

// itemsByName is a snapshot's index of resources (their stand-ins
// where they have one: hashCache.snapshotItem).
func itemsByName(items []types.Resource, hashes *hashCache) map[string]types.ResourceWithTTL {
	m := make(map[string]types.ResourceWithTTL, len(items))
	for _, it := range items {
		m[cache.GetResourceName(it)] = types.ResourceWithTTL{Resource: hashes.snapshotItem(it)}
	}
	return m
}

// shapeKey is the workload's shape, or "" when it must be translated on
// its own (its name matters).
func shapeKey(st *model.State, w model.Workload) string {
	if w.Labels["app"] == "" || isGatewayEndpoint(st, w) {
		return ""
	}
	var b strings.Builder
	field := func(s string) { b.WriteString(strconv.Quote(s)); b.WriteByte(' ') }
	field(w.Namespace)
	field(w.ServiceAccount)
	for _, k := range slices.Sorted(maps.Keys(w.Labels)) {
		field("l:" + k + "=" + w.Labels[k])
	}
	for _, k := range slices.Sorted(maps.Keys(w.Annotations)) {
		field("a:" + k + "=" + w.Annotations[k])
	}
	for _, p := range w.Ports {
		field("p:" + p.Name + "/" + strconv.FormatUint(uint64(p.Port), 10) + "/" + string(p.Protocol))
	}
	for _, p := range w.InboundPorts {
		field("i:" + strconv.FormatUint(uint64(p), 10))
	}
	field(w.Locality.Region + "/" + w.Locality.Zone + "/" + w.Locality.SubZone)
	field(strconv.FormatUint(uint64(w.Weight), 10))
	return b.String()
}

// isGatewayEndpoint reports whether w backs the egress gateway Service
// (its translation depends on its name).
func isGatewayEndpoint(st *model.State, w model.Workload) bool {
	if w.Namespace != mesh.EgressGatewayNamespace {
		return false
	}
	for _, svc := range st.Services {
		if svc.Name != mesh.EgressGatewayService || svc.Namespace != mesh.EgressGatewayNamespace {
			continue
		}
		for _, p := range svc.Ports {
			for _, ep := range p.Endpoints {
				if ep.Workload == w.Name {
					return true
				}
			}
		}
	}
	return false
}

// build translates w, sharing the translation of the first workload of
// its shape in this state.
func (c *shapeCache) build(st *model.State, w model.Workload, mc meshconfig.Config) (*translate.Resources, error) {
	sh, err := c.get(st, w, mc)
	if err != nil || sh == nil {
		return c.idx.Build(w)
	}
	if sh.rep.Name == w.Name && sh.rep.Address == w.Address {
		return sh.res, nil
	}
	return rewrite(sh.res, sh.rep.Address, w.Address), nil
}

// get returns the shape translation w shares, or nil when w must be
// translated on its own (c.idx.Build).
func (c *shapeCache) get(st *model.State, w model.Workload, mc meshconfig.Config) (*shaped, error) {
	if c.state != st {
		if c.idx == nil {
			c.idx = translate.NewIndex(*st, mc)
		} else {
			c.idx = c.idx.Next(*st) // keeps the objects the change did not touch
		}
		c.state = st
		c.prev, c.shapes = c.shapes, map[string]*shaped{}
		if c.hashes == nil {
			c.hashes = newHashCache()
		}
	}
	key := shapeKey(st, w)
	if key == "" {
		return nil, nil
	}
	if sh := c.shapes[key]; sh != nil {
		return sh, sh.err
	}
	old := c.prev[key]
	rep := w
	if old != nil && old.rep.Name != w.Name {
		// Keep the shape's representative while it exists with the same
		// shape: another one would make new listeners and inbound clusters
		// (its address) and every replica's sync rewrite them again.
		if r, ok := st.Workload(old.rep.NodeID()); ok && shapeKey(st, r) == key {
			rep = r
		}
	}
	res, err := c.idx.Build(rep)
	if err == nil && old != nil && old.err == nil && res == old.res && old.rep.Address == rep.Address {
		// The Index gave the previous translation back (an endpoint change
		// that does not reach this shape): nothing to hash.
		c.hashes.keep(old.byType[:])
		c.shapes[key] = old
		return old, nil
	}
	sh := &shaped{rep: rep, res: res, err: err}
	if err == nil {
		sh.byType = resourcesByType(res)
		for i := range sh.byType {
			if sh.sums[i], err = c.hashes.sum(sh.byType[i]); err != nil {
				sh.err = err
				break
			}
		}
	}
	if old != nil && old.err == nil && sh.err == nil && old.sums == sh.sums && old.rep.Address == sh.rep.Address {
		sh = old // unchanged: its nodes need no sync
	}
	c.shapes[key] = sh
	return sh, sh.err
}

// rewrite returns res for a replica at address to: listeners and inbound
// clusters copied with the address replaced, everything else shared. Each
// replica keeps its copies for as long as it is connected, so only what
// holds the address is new: a listener's address, an inbound cluster's
// load assignment; their other fields alias the shape's objects.
func rewrite(res *translate.Resources, from, to string) *translate.Resources {
	out := &translate.Resources{Routes: res.Routes, Endpoints: res.Endpoints}
	out.Listeners = make([]*listener.Listener, len(res.Listeners))
	for i, l := range res.Listeners {
		// A new Listener sharing everything but its address: the filter
		// chains (an egress-isolated proxy's RBAC alone is tens of KB)
		// stay one object for every replica.
		nl := shallowCopy(l)
		nl.Address = proto.Clone(l.GetAddress()).(*core.Address)
		setAddress(nl.GetAddress(), from, to)
		out.Listeners[i] = nl
	}
	out.Clusters = make([]*cluster.Cluster, len(res.Clusters))
	for i, cl := range res.Clusters {
		if cl.GetType() == cluster.Cluster_STATIC && strings.HasPrefix(cl.GetName(), "inbound|") && cl.GetLoadAssignment() != nil {
			la := proto.Clone(cl.GetLoadAssignment()).(*endpoint.ClusterLoadAssignment)
			cl = shallowCopy(cl)
			cl.LoadAssignment = la
			for _, le := range la.GetEndpoints() {
				for _, e := range le.GetLbEndpoints() {
					setAddress(e.GetEndpoint().GetAddress(), from, to)
				}
			}
		}
		out.Clusters[i] = cl
	}
	return out
}

func setAddress(a *core.Address, from, to string) {
	if sa := a.GetSocketAddress(); sa != nil && sa.GetAddress() == from {
		sa.Address = to
	}
}

// shallowCopy returns a new message whose fields are m's (message, list
// and map fields alias m's: neither is ever modified).
func shallowCopy[M proto.Message](m M) M {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return dst.Interface().(M)
}
