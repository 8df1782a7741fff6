package xds

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

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

// shapeCache is the translations of one state, by shape key. s.mu guards it.
type shapeCache struct {
	state  *model.State
	shapes map[string]*shaped
}

type shaped struct {
	rep model.Workload
	res *translate.Resources
	err error
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

// buildShared translates w, sharing the translation of the first workload
// of its shape in this state.
func (c *shapeCache) build(st *model.State, w model.Workload, mc meshconfig.Config) (*translate.Resources, error) {
	if c.state != st {
		c.state, c.shapes = st, map[string]*shaped{}
	}
	key := shapeKey(st, w)
	if key == "" {
		return translate.Build(*st, w, mc)
	}
	sh := c.shapes[key]
	if sh == nil {
		res, err := translate.Build(*st, w, mc)
		sh = &shaped{rep: w, res: res, err: err}
		c.shapes[key] = sh
	}
	if sh.err != nil || (sh.rep.Name == w.Name && sh.rep.Address == w.Address) {
		return sh.res, sh.err
	}
	return rewrite(sh.res, sh.rep.Address, w.Address), nil
}

// rewrite returns res for a replica at address to: listeners and inbound
// clusters cloned with the address replaced, everything else shared.
func rewrite(res *translate.Resources, from, to string) *translate.Resources {
	out := &translate.Resources{Routes: res.Routes, Endpoints: res.Endpoints}
	out.Listeners = make([]*listener.Listener, len(res.Listeners))
	for i, l := range res.Listeners {
		l = proto.Clone(l).(*listener.Listener)
		setAddress(l.GetAddress(), from, to)
		out.Listeners[i] = l
	}
	out.Clusters = make([]*cluster.Cluster, len(res.Clusters))
	for i, cl := range res.Clusters {
		if cl.GetType() == cluster.Cluster_STATIC && strings.HasPrefix(cl.GetName(), "inbound|") {
			cl = proto.Clone(cl).(*cluster.Cluster)
			for _, le := range cl.GetLoadAssignment().GetEndpoints() {
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
