package translate

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	rbacconfig "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// Authorization (docs/architecture.md, Authorization contract): the RBAC
// HTTP filters of the inbound chains and of the outbound listener, and the
// egress scope that trims what an egress-isolated proxy receives.

// inboundRBAC returns the RBAC filters of the inbound chain of a workload
// port, in the order they run: audit, deny, NetworkPolicy ingress, allow.
func (b *builder) inboundRBAC(port uint32) ([]*hcm.HttpFilter, error) {
	var audit, deny, allow map[string]*rbacconfig.Policy
	for _, ap := range b.state.Authz.AuthorizationPolicies {
		if !ap.Selects(b.w) {
			continue
		}
		dst := &allow
		switch ap.Action {
		case v1alpha1.ActionDeny:
			dst = &deny
		case v1alpha1.ActionAudit:
			dst = &audit
		}
		if *dst == nil {
			*dst = map[string]*rbacconfig.Policy{}
		}
		for i, r := range ap.Rules {
			(*dst)[fmt.Sprintf("%s/%s/rules[%d]", ap.Namespace, ap.Name, i)] = b.authzRule(ap.Namespace, r)
		}
	}
	var netpol map[string]*rbacconfig.Policy
	if b.state.IngressIsolated(b.w) {
		netpol = map[string]*rbacconfig.Policy{}
		for _, np := range b.state.Authz.NetworkPolicies {
			if !np.Ingress || !np.Selects(b.w) {
				continue
			}
			for i, r := range np.IngressRules {
				if !coversPort(r.Ports, port, b.w.Ports) {
					continue
				}
				perm := anyPermission()
				if len(r.Ports) > 0 {
					perm = &rbacconfig.Permission{Rule: &rbacconfig.Permission_DestinationPort{DestinationPort: port}}
				}
				netpol[fmt.Sprintf("%s/%s/ingress[%d]", np.Namespace, np.Name, i)] = &rbacconfig.Policy{
					Permissions: []*rbacconfig.Permission{perm},
					Principals:  []*rbacconfig.Principal{b.peersPrincipal(np.Namespace, r.Peers)},
				}
			}
		}
	}
	var out []*hcm.HttpFilter
	for _, f := range []struct {
		name     string
		action   rbacconfig.RBAC_Action
		policies map[string]*rbacconfig.Policy
	}{
		{mesh.FilterAuthzAudit, rbacconfig.RBAC_LOG, audit},
		{mesh.FilterAuthzDeny, rbacconfig.RBAC_DENY, deny},
		{mesh.FilterNetpolIngress, rbacconfig.RBAC_ALLOW, netpol},
		{mesh.FilterAuthzAllow, rbacconfig.RBAC_ALLOW, allow},
	} {
		if f.policies == nil {
			continue
		}
		hf, err := rbacFilter(f.name, f.action, f.policies)
		if err != nil {
			return nil, err
		}
		out = append(out, hf)
	}
	return out, nil
}

func rbacFilter(name string, action rbacconfig.RBAC_Action, policies map[string]*rbacconfig.Policy) (*hcm.HttpFilter, error) {
	a, err := typed(&rbacfilter.RBAC{Rules: &rbacconfig.RBAC{Action: action, Policies: policies}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}, nil
}

// coversPort reports whether NetworkPolicy ports (none: all) allow TCP to
// a workload port; names resolve against the workload's declared ports.
func coversPort(ports []model.NetworkPolicyPort, port uint32, declared []model.WorkloadPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != model.ProtocolTCP {
			continue
		}
		switch {
		case p.Name != "":
			for _, d := range declared {
				if d.Name == p.Name && d.Port == port && (d.Protocol == "" || d.Protocol == model.ProtocolTCP) {
					return true
				}
			}
		case p.Port == 0:
			return true
		case p.EndPort != 0:
			if p.Port <= port && port <= p.EndPort {
				return true
			}
		case p.Port == port:
			return true
		}
	}
	return false
}

// peersPrincipal is the principal of a NetworkPolicy rule's peers (ORed;
// none: any).
func (b *builder) peersPrincipal(policyNS string, peers []model.NetworkPolicyPeer) *rbacconfig.Principal {
	if len(peers) == 0 {
		return anyPrincipal()
	}
	ids := make([]*rbacconfig.Principal, 0, len(peers))
	for _, p := range peers {
		ids = append(ids, b.peerPrincipal(policyNS, p))
	}
	return orIDs(ids)
}

// peerPrincipal: an ipBlock by address; a selector peer resolved to the
// workloads it matches, per service account: the identity alone when the
// peer matches every workload of that service account, else the identity
// AND the connection's source address being one of the matched workloads'.
func (b *builder) peerPrincipal(policyNS string, p model.NetworkPolicyPeer) *rbacconfig.Principal {
	if p.IPBlock != nil {
		return ipBlockPrincipal(p.IPBlock.CIDR, p.IPBlock.Except)
	}
	matched := b.state.PeerWorkloads(policyNS, p)
	if len(matched) == 0 {
		return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_NotId{NotId: anyPrincipal()}}
	}
	type saKey struct{ ns, sa string }
	groups := map[saKey][]model.Workload{}
	var order []saKey
	for _, w := range matched {
		k := saKey{w.Namespace, w.ServiceAccount}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], w)
	}
	total := map[saKey]int{}
	for _, w := range b.state.Workloads {
		total[saKey{w.Namespace, w.ServiceAccount}]++
	}
	ids := make([]*rbacconfig.Principal, 0, len(order))
	for _, k := range order {
		id := authenticated(exact(mesh.SPIFFEID(b.mc.TrustDomain, k.ns, k.sa)))
		if len(groups[k]) == total[k] {
			ids = append(ids, id)
			continue
		}
		b.byAddress = true // the principal names the workloads' addresses
		var ips []*rbacconfig.Principal
		for _, w := range groups[k] {
			ips = append(ips, sourcePrincipal(w.Address))
		}
		ids = append(ids, &rbacconfig.Principal{Identifier: &rbacconfig.Principal_AndIds{AndIds: &rbacconfig.Principal_Set{
			Ids: []*rbacconfig.Principal{id, orIDs(ips)},
		}}})
	}
	return orIDs(ids)
}

func ipBlockPrincipal(cidr string, except []string) *rbacconfig.Principal {
	in := &rbacconfig.Principal{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange(cidr)}}
	if len(except) == 0 {
		return in
	}
	var ex []*rbacconfig.Principal
	for _, e := range except {
		ex = append(ex, &rbacconfig.Principal{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange(e)}})
	}
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_AndIds{AndIds: &rbacconfig.Principal_Set{Ids: []*rbacconfig.Principal{
		in, {Identifier: &rbacconfig.Principal_NotId{NotId: orIDs(ex)}},
	}}}}
}

func sourcePrincipal(addr string) *rbacconfig.Principal {
	ip, err := netip.ParseAddr(addr)
	bits := 32
	if err == nil {
		bits = ip.BitLen()
	}
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{
		AddressPrefix: addr, PrefixLen: wrapperspb.UInt32(uint32(bits)),
	}}}
}

// cidrRange turns a validated CIDR (or address) into a CidrRange.
func cidrRange(s string) *core.CidrRange {
	if pf, err := netip.ParsePrefix(s); err == nil {
		return &core.CidrRange{AddressPrefix: pf.Masked().Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(pf.Bits()))}
	}
	ip, _ := netip.ParseAddr(s)
	return &core.CidrRange{AddressPrefix: ip.String(), PrefixLen: wrapperspb.UInt32(uint32(ip.BitLen()))}
}

func anyPrincipal() *rbacconfig.Principal {
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_Any{Any: true}}
}

func anyPermission() *rbacconfig.Permission {
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_Any{Any: true}}
}

func orIDs(ids []*rbacconfig.Principal) *rbacconfig.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_OrIds{OrIds: &rbacconfig.Principal_Set{Ids: ids}}}
}

func andIDs(ids []*rbacconfig.Principal) *rbacconfig.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_AndIds{AndIds: &rbacconfig.Principal_Set{Ids: ids}}}
}

func orRules(rules []*rbacconfig.Permission) *rbacconfig.Permission {
	if len(rules) == 1 {
		return rules[0]
	}
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_OrRules{OrRules: &rbacconfig.Permission_Set{Rules: rules}}}
}

func andRules(rules []*rbacconfig.Permission) *rbacconfig.Permission {
	if len(rules) == 1 {
		return rules[0]
	}
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_AndRules{AndRules: &rbacconfig.Permission_Set{Rules: rules}}}
}

func authenticated(m *matcher.StringMatcher) *rbacconfig.Principal {
	return &rbacconfig.Principal{Identifier: &rbacconfig.Principal_Authenticated_{Authenticated: &rbacconfig.Principal_Authenticated{PrincipalName: m}}}
}

func exact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

// wildcard turns "x", "x*", "*x" and "*" into a StringMatcher.
func wildcard(s string, ignoreCase bool) *matcher.StringMatcher {
	m := &matcher.StringMatcher{IgnoreCase: ignoreCase}
	switch {
	case s == "*":
		m.MatchPattern = &matcher.StringMatcher_Prefix{Prefix: ""}
	case strings.HasSuffix(s, "*"):
		m.MatchPattern = &matcher.StringMatcher_Prefix{Prefix: strings.TrimSuffix(s, "*")}
	case strings.HasPrefix(s, "*"):
		m.MatchPattern = &matcher.StringMatcher_Suffix{Suffix: strings.TrimPrefix(s, "*")}
	default:
		m.MatchPattern = &matcher.StringMatcher_Exact{Exact: s}
	}
	return m
}

func headerPermission(name string, m *matcher.StringMatcher) *rbacconfig.Permission {
	return &rbacconfig.Permission{Rule: &rbacconfig.Permission_Header{Header: &route.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: m},
	}}}
}

// authzRule translates one AuthorizationPolicy rule: principals from
// `from` (any when empty), one permission ANDing `to` (ORed operations)
// and every `when` condition.
func (b *builder) authzRule(policyNS string, r v1alpha1.AuthorizationRule) *rbacconfig.Policy {
	pol := &rbacconfig.Policy{}
	if len(r.From) == 0 {
		pol.Principals = []*rbacconfig.Principal{anyPrincipal()}
	}
	for _, s := range r.From {
		var and []*rbacconfig.Principal
		if len(s.Principals) > 0 {
			var or []*rbacconfig.Principal
			for _, p := range s.Principals {
				or = append(or, authenticated(wildcard(p, false)))
			}
			and = append(and, orIDs(or))
		}
		if len(s.Namespaces) > 0 {
			var or []*rbacconfig.Principal
			for _, ns := range s.Namespaces {
				re := "spiffe://" + regexp.QuoteMeta(b.mc.TrustDomain) + "/ns/" + regexp.QuoteMeta(ns) + "/sa/[^/]+"
				or = append(or, authenticated(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re}}}))
			}
			and = append(and, orIDs(or))
		}
		if len(s.ServiceAccounts) > 0 {
			var or []*rbacconfig.Principal
			for _, sa := range s.ServiceAccounts {
				ns, name, ok := strings.Cut(sa, "/")
				if !ok {
					ns, name = policyNS, sa
				}
				or = append(or, authenticated(exact(mesh.SPIFFEID(b.mc.TrustDomain, ns, name))))
			}
			and = append(and, orIDs(or))
		}
		if len(s.IPBlocks) > 0 {
			var or []*rbacconfig.Principal
			for _, c := range s.IPBlocks {
				or = append(or, &rbacconfig.Principal{Identifier: &rbacconfig.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange(c)}})
			}
			and = append(and, orIDs(or))
		}
		pol.Principals = append(pol.Principals, andIDs(and))
	}
	var all []*rbacconfig.Permission
	if len(r.To) > 0 {
		var ops []*rbacconfig.Permission
		for _, o := range r.To {
			ops = append(ops, operationPermission(o))
		}
		all = append(all, orRules(ops))
	}
	for _, c := range r.When {
		var or []*rbacconfig.Permission
		for _, v := range c.Values {
			or = append(or, headerPermission(c.Header, wildcard(v, false)))
		}
		all = append(all, orRules(or))
	}
	if len(all) == 0 {
		all = []*rbacconfig.Permission{anyPermission()}
	}
	pol.Permissions = []*rbacconfig.Permission{andRules(all)}
	return pol
}

func operationPermission(o v1alpha1.Operation) *rbacconfig.Permission {
	var and []*rbacconfig.Permission
	if len(o.Hosts) > 0 {
		var or []*rbacconfig.Permission
		for _, h := range o.Hosts {
			or = append(or, headerPermission(":authority", wildcard(h, true)))
			if !strings.HasSuffix(h, "*") {
				// The host with any port.
				or = append(or, &rbacconfig.Permission{Rule: &rbacconfig.Permission_Header{Header: &route.HeaderMatcher{
					Name: ":authority", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{
						IgnoreCase:   true,
						MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: hostRegex(h) + `:[0-9]+`}},
					}},
				}}})
			}
		}
		and = append(and, orRules(or))
	}
	if len(o.Ports) > 0 {
		var or []*rbacconfig.Permission
		for _, p := range o.Ports {
			or = append(or, &rbacconfig.Permission{Rule: &rbacconfig.Permission_DestinationPort{DestinationPort: p}})
		}
		and = append(and, orRules(or))
	}
	if len(o.Methods) > 0 {
		var or []*rbacconfig.Permission
		for _, m := range o.Methods {
			or = append(or, headerPermission(":method", exact(m)))
		}
		and = append(and, orRules(or))
	}
	if len(o.Paths) > 0 {
		var or []*rbacconfig.Permission
		for _, p := range o.Paths {
			or = append(or, &rbacconfig.Permission{Rule: &rbacconfig.Permission_UrlPath{UrlPath: &matcher.PathMatcher{
				Rule: &matcher.PathMatcher_Path{Path: wildcard(p, false)},
			}}})
		}
		and = append(and, orRules(or))
	}
	return andRules(and)
}

// hostRegex is the RE2 of a host pattern ("*.x" allowed), case folded by
// the matcher's ignore_case.
func hostRegex(h string) string {
	if strings.HasPrefix(h, "*") {
		return ".*" + regexp.QuoteMeta(strings.TrimPrefix(h, "*"))
	}
	return regexp.QuoteMeta(h)
}

// egressScope is what an egress-isolated proxy may reach: per service
// port, the allowed endpoints, and per egress rule the virtual hosts it
// reaches.
type egressScope struct {
	endpoints map[string][]model.Endpoint // cluster name -> allowed endpoints
	reached   map[string]bool             // cluster name -> some endpoint allowed
	rules     []egressRule
	filter    scopeFilter
}

type egressRule struct {
	name     string
	allowAll bool
	clusters []string
}

// scopeFilter decides which endpoints of a service port the rules of a
// scope allow; it is kept with the scope so that the next state's Index
// can redo only the ports whose endpoints changed (incremental.go).
type scopeFilter struct {
	rules    []model.NetworkPolicyRule
	peerSets [][]map[workloadKey]bool // per rule, per peer: workloads
	// Per rule, the namespaces whose workloads some peer may allow (nil:
	// any endpoint may be allowed: no peers, or an ipBlock peer), so that
	// the endpoints of the other namespaces' services are not looked at.
	ruleNS     []map[string]bool
	namedPorts bool // some rule names a port: workloads' declared ports matter
	// byAddress: some rule has an ipBlock peer, so whether an endpoint is
	// allowed depends on its address.
	byAddress bool
}

// egressScope returns nil when the workload is not egress-isolated.
func (b *builder) egressScope() *egressScope {
	if !b.state.EgressIsolated(b.w) {
		return nil
	}
	sc := &egressScope{endpoints: map[string][]model.Endpoint{}, reached: map[string]bool{}}
	f := &sc.filter
	for _, np := range b.state.Authz.NetworkPolicies {
		if !np.Egress || !np.Selects(b.w) {
			continue
		}
		for i, r := range np.EgressRules {
			f.rules = append(f.rules, r)
			var sets []map[workloadKey]bool
			anyNS := len(r.Peers) == 0
			nss := map[string]bool{}
			for _, p := range r.Peers {
				anyNS = anyNS || p.IPBlock != nil
				f.byAddress = f.byAddress || p.IPBlock != nil
				set := map[workloadKey]bool{}
				for _, w := range b.state.PeerWorkloads(np.Namespace, p) {
					set[workloadKey{w.Name, w.Namespace}] = true
					nss[w.Namespace] = true
				}
				sets = append(sets, set)
			}
			f.peerSets = append(f.peerSets, sets)
			if anyNS {
				nss = nil
			}
			f.ruleNS = append(f.ruleNS, nss)
			for _, p := range r.Ports {
				f.namedPorts = f.namedPorts || p.Name != ""
			}
			sc.rules = append(sc.rules, egressRule{name: fmt.Sprintf("%s/%s/egress[%d]", np.Namespace, np.Name, i), allowAll: len(r.Peers) == 0 && len(r.Ports) == 0})
		}
	}
	for _, op := range b.idx.outboundPorts() {
		name := op.name
		eps := f.allowed(b.state, op, func(i int) {
			if rs := &sc.rules[i]; len(rs.clusters) == 0 || rs.clusters[len(rs.clusters)-1] != name {
				rs.clusters = append(rs.clusters, name)
			}
		})
		if len(eps) > 0 {
			sc.endpoints[name] = eps
			sc.reached[name] = true
		}
	}
	return sc
}

// allowed returns the endpoints of op that some rule allows, calling hit
// (when not nil) with each rule that allows one.
func (f *scopeFilter) allowed(st model.State, op outboundPort, hit func(rule int)) []model.Endpoint {
	candidate := false
	for i := range f.rules {
		candidate = candidate || f.ruleNS[i] == nil || f.ruleNS[i][op.svc.Namespace]
	}
	if !candidate {
		return nil
	}
	var out []model.Endpoint
	for _, ep := range op.eps {
		var declared []model.WorkloadPort
		if f.namedPorts && ep.Sidecar() {
			if w, ok := st.Workload(mesh.NodeID(ep.Workload, ep.Namespace)); ok {
				declared = w.Ports
			}
		}
		ok := false
		for i, r := range f.rules {
			if f.ruleNS[i] != nil && !f.ruleNS[i][ep.Namespace] {
				continue // no peer of the rule is in the endpoint's namespace
			}
			if !coversPort(r.Ports, ep.Port, declared) || !peerAllows(r.Peers, f.peerSets[i], ep) {
				continue
			}
			ok = true
			if hit != nil {
				hit(i)
			}
		}
		if ok {
			out = append(out, ep)
		}
	}
	return out
}

// workloadKey is a workload's name and namespace.
type workloadKey struct{ name, namespace string }

func peerAllows(peers []model.NetworkPolicyPeer, sets []map[workloadKey]bool, ep model.Endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for i, p := range peers {
		if p.IPBlock != nil {
			if ipBlockContains(*p.IPBlock, ep.Address) {
				return true
			}
			continue
		}
		if ep.Sidecar() && sets[i][workloadKey{ep.Workload, ep.Namespace}] {
			return true
		}
	}
	return false
}

func ipBlockContains(b model.IPBlock, addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	pf, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !pf.Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		if ex, err := netip.ParsePrefix(e); err == nil && ex.Contains(ip) {
			return false
		}
	}
	return true
}

// egressRBAC is the outbound listener's NetworkPolicy egress filter: per
// rule, the :authority of every virtual host it reaches (nil when the
// workload is not egress-isolated).
func (b *builder) egressRBAC(sc *egressScope) ([]*hcm.HttpFilter, error) {
	if sc == nil {
		return nil, nil
	}
	wanted := map[string]bool{} // the clusters some rule names
	for _, r := range sc.rules {
		if !r.allowAll {
			for _, c := range r.clusters {
				wanted[c] = true
			}
		}
	}
	domains := map[string][]string{} // cluster -> the virtual host's domains
	for _, p := range b.idx.outboundPorts() {
		if wanted[p.name] {
			domains[p.name] = b.domains(p.svc, p.port)
		}
	}
	policies := map[string]*rbacconfig.Policy{}
	for _, r := range sc.rules {
		var perms []*rbacconfig.Permission
		if r.allowAll {
			perms = []*rbacconfig.Permission{anyPermission()}
		} else {
			for _, c := range r.clusters {
				for _, d := range domains[c] {
					perms = append(perms, headerPermission(":authority", &matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Exact{Exact: d}}))
				}
			}
		}
		if len(perms) == 0 {
			continue
		}
		policies[r.name] = &rbacconfig.Policy{Permissions: perms, Principals: []*rbacconfig.Principal{anyPrincipal()}}
	}
	f, err := rbacFilter(mesh.FilterNetpolEgress, rbacconfig.RBAC_ALLOW, policies)
	if err != nil {
		return nil, err
	}
	return []*hcm.HttpFilter{f}, nil
}

// prune drops the clusters and assignments of an egress-isolated proxy
// that no virtual host route reaches.
func (sc *egressScope) prune(res *Resources, rc *route.RouteConfiguration) {
	if sc == nil {
		return
	}
	used := sc.used(rc)
	isOutbound := func(name string) bool { return strings.HasPrefix(name, "outbound|") }
	res.Clusters = slices.DeleteFunc(res.Clusters, func(c *cluster.Cluster) bool { return isOutbound(c.GetName()) && !used[c.GetName()] })
	res.Endpoints = slices.DeleteFunc(res.Endpoints, func(e *endpoint.ClusterLoadAssignment) bool { return !used[e.GetClusterName()] })
}

// used is the set of clusters the routes of rc send to (nil when the
// proxy is not egress-isolated: it gets every cluster).
func (sc *egressScope) used(rc *route.RouteConfiguration) map[string]bool {
	if sc == nil {
		return nil
	}
	used := map[string]bool{}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); c != "" {
				used[c] = true
			}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				used[wc.GetName()] = true
			}
		}
	}
	return used
}

// scopedEndpoints returns the endpoints of a service port the proxy may
// reach (all when not egress-isolated).
func (sc *egressScope) scopedEndpoints(name string, eps []model.Endpoint) []model.Endpoint {
	if sc == nil {
		return eps
	}
	return sc.endpoints[name]
}

// reaches reports whether the proxy gets the virtual host of a cluster.
func (sc *egressScope) reaches(name string) bool { return sc == nil || sc.reached[name] }
