package model

import (
	"cmp"
	"maps"
	"slices"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// LabelNamespaceName is the label every Kubernetes namespace carries with
// its own name (set by the API server since 1.21).
const LabelNamespaceName = "kubernetes.io/metadata.name"

// Authz is the mesh's authorization configuration: NetworkPolicies,
// AuthorizationPolicies and the namespace labels their selectors read.
// Set with State.WithAuthz.
type Authz struct {
	// NetworkPolicies sorted by namespace, then name.
	NetworkPolicies []NetworkPolicy
	// AuthorizationPolicies sorted by namespace, then name.
	AuthorizationPolicies []AuthorizationPolicy
	// NamespaceLabels holds the labels of declared namespaces (without the
	// automatic LabelNamespaceName; State.NamespaceLabels adds it).
	NamespaceLabels map[string]map[string]string
	// Warnings are registry findings that are not errors (e.g. an
	// egress-isolated workload with no DNS), as "file:line: ..." lines.
	Warnings []string
}

// LabelSelector is a Kubernetes label selector: every MatchLabels pair and
// every requirement must hold. The zero value selects everything.
type LabelSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []LabelRequirement
}

// Label selector operators.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
)

// LabelRequirement is one matchExpressions entry.
type LabelRequirement struct {
	Key      string
	Operator string
	Values   []string
}

// Matches reports whether labels satisfy the selector.
func (s LabelSelector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case OpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy after defaulting.
type NetworkPolicy struct {
	Name      string
	Namespace string
	// PodSelector selects the workloads in Namespace the policy isolates.
	PodSelector LabelSelector
	// Ingress and Egress are the policy types (policyTypes, defaulted:
	// Ingress always when unset, Egress when egress rules exist).
	Ingress, Egress bool
	// IngressRules and EgressRules in the order written; none with the
	// type set means nothing is allowed in that direction.
	IngressRules []NetworkPolicyRule
	EgressRules  []NetworkPolicyRule
}

// NetworkPolicyRule is one ingress (from) or egress (to) rule.
type NetworkPolicyRule struct {
	// Peers are ORed; none means every peer.
	Peers []NetworkPolicyPeer
	// Ports are ORed; none means every port.
	Ports []NetworkPolicyPort
}

// NetworkPolicyPeer is one peer: pods by selectors, or an IP block.
type NetworkPolicyPeer struct {
	// PodSelector nil: every pod of the selected namespaces.
	PodSelector *LabelSelector
	// NamespaceSelector nil: the policy's own namespace.
	NamespaceSelector *LabelSelector
	// IPBlock is set alone (then both selectors are nil).
	IPBlock *IPBlock
}

// IPBlock is a CIDR minus exceptions.
type IPBlock struct {
	CIDR   string
	Except []string
}

// NetworkPolicyPort is one port entry: Protocol (defaulted to TCP), and a
// Port number or a Name (none: every port), with EndPort for a range.
type NetworkPolicyPort struct {
	Protocol Protocol
	Port     uint32
	Name     string
	EndPort  uint32
}

// AuthorizationPolicy is a weft.dev AuthorizationPolicy.
type AuthorizationPolicy struct {
	Name      string
	Namespace string
	// Selector nil: every workload of Namespace.
	Selector *LabelSelector
	// Action ALLOW, DENY or AUDIT (defaulted to ALLOW).
	Action v1alpha1.AuthorizationAction
	Rules  []v1alpha1.AuthorizationRule
}

// Selects reports whether the policy applies to w.
func (p AuthorizationPolicy) Selects(w Workload) bool {
	return w.Namespace == p.Namespace && (p.Selector == nil || p.Selector.Matches(w.Labels))
}

// Selects reports whether the network policy applies to w.
func (p NetworkPolicy) Selects(w Workload) bool {
	return w.Namespace == p.Namespace && p.PodSelector.Matches(w.Labels)
}

// WithAuthz returns a copy of s holding a (sorted; the caller must not
// modify a's contents afterwards).
func (s State) WithAuthz(a Authz) State {
	a.NetworkPolicies = slices.Clone(a.NetworkPolicies)
	slices.SortFunc(a.NetworkPolicies, func(x, y NetworkPolicy) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	a.AuthorizationPolicies = slices.Clone(a.AuthorizationPolicies)
	slices.SortFunc(a.AuthorizationPolicies, func(x, y AuthorizationPolicy) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	a.NamespaceLabels = maps.Clone(a.NamespaceLabels)
	s.Authz = a
	return s
}

// NamespaceLabels returns a namespace's labels, always including
// LabelNamespaceName: <name>, as Kubernetes sets it.
func (s State) NamespaceLabels(ns string) map[string]string {
	out := maps.Clone(s.Authz.NamespaceLabels[ns])
	if out == nil {
		out = map[string]string{}
	}
	out[LabelNamespaceName] = ns
	return out
}

// IngressIsolated reports whether some NetworkPolicy isolates w for ingress.
func (s State) IngressIsolated(w Workload) bool {
	for _, p := range s.Authz.NetworkPolicies {
		if p.Ingress && p.Selects(w) {
			return true
		}
	}
	return false
}

// EgressIsolated reports whether some NetworkPolicy isolates w for egress.
func (s State) EgressIsolated(w Workload) bool {
	for _, p := range s.Authz.NetworkPolicies {
		if p.Egress && p.Selects(w) {
			return true
		}
	}
	return false
}

// PeerWorkloads returns the workloads a pod/namespace peer of a policy in
// namespace policyNS selects (none for an ipBlock peer).
func (s State) PeerWorkloads(policyNS string, peer NetworkPolicyPeer) []Workload {
	if peer.IPBlock != nil {
		return nil
	}
	var out []Workload
	// Workloads are sorted by namespace: match each namespace's labels once.
	ns, nsMatches := "", false
	for _, w := range s.Workloads {
		if peer.NamespaceSelector == nil {
			if w.Namespace != policyNS {
				continue
			}
		} else {
			if w.Namespace != ns || ns == "" {
				ns, nsMatches = w.Namespace, peer.NamespaceSelector.Matches(s.NamespaceLabels(w.Namespace))
			}
			if !nsMatches {
				continue
			}
		}
		if peer.PodSelector != nil && !peer.PodSelector.Matches(w.Labels) {
			continue
		}
		out = append(out, w)
	}
	return out
}
