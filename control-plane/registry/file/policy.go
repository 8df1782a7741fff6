package file

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// NetworkPolicy and AuthorizationPolicy: checks of one object (validate*),
// conversion to the model and the DNS warning (buildAuthz).

func validateNetworkPolicy(p *parser, d *document, np *networkingv1.NetworkPolicy) {
	spec := &np.Spec
	p.fieldErrors(d, metav1validation.ValidateLabelSelector(&spec.PodSelector, metav1validation.LabelSelectorValidationOptions{}, field.NewPath("spec", "podSelector")))
	seen := map[networkingv1.PolicyType]bool{}
	for i, t := range spec.PolicyTypes {
		f := fmt.Sprintf("spec.policyTypes[%d]", i)
		switch t {
		case networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress:
		default:
			p.errorf(d, f, "%q is not Ingress or Egress", t)
		}
		if seen[t] {
			p.errorf(d, f, "duplicate policy type %q", t)
		}
		seen[t] = true
	}
	for i, r := range spec.Ingress {
		f := fmt.Sprintf("spec.ingress[%d]", i)
		for j := range r.From {
			p.validatePeer(d, fmt.Sprintf("%s.from[%d]", f, j), &r.From[j])
		}
		p.validateNetPorts(d, f, r.Ports)
	}
	for i, r := range spec.Egress {
		f := fmt.Sprintf("spec.egress[%d]", i)
		for j := range r.To {
			p.validatePeer(d, fmt.Sprintf("%s.to[%d]", f, j), &r.To[j])
		}
		p.validateNetPorts(d, f, r.Ports)
	}
}

func (p *parser) validatePeer(d *document, f string, peer *networkingv1.NetworkPolicyPeer) {
	opts := metav1validation.LabelSelectorValidationOptions{}
	if peer.PodSelector != nil {
		p.fieldErrors(d, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, field.NewPath(f+".podSelector")))
	}
	if peer.NamespaceSelector != nil {
		p.fieldErrors(d, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, field.NewPath(f+".namespaceSelector")))
	}
	switch {
	case peer.IPBlock == nil && peer.PodSelector == nil && peer.NamespaceSelector == nil:
		p.errorf(d, f, "must specify a podSelector, a namespaceSelector or an ipBlock")
		return
	case peer.IPBlock != nil && (peer.PodSelector != nil || peer.NamespaceSelector != nil):
		p.errorf(d, f, "ipBlock may not be combined with podSelector or namespaceSelector")
		return
	case peer.IPBlock == nil:
		return
	}
	cidr, err := netip.ParsePrefix(peer.IPBlock.CIDR)
	if err != nil {
		p.errorf(d, f+".ipBlock.cidr", "%q is not a CIDR", peer.IPBlock.CIDR)
		return
	}
	for i, e := range peer.IPBlock.Except {
		ex, err := netip.ParsePrefix(e)
		switch {
		case err != nil:
			p.errorf(d, fmt.Sprintf("%s.ipBlock.except[%d]", f, i), "%q is not a CIDR", e)
		case ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Contains(ex.Addr()):
			p.errorf(d, fmt.Sprintf("%s.ipBlock.except[%d]", f, i), "%s must be strictly within the cidr %s", e, peer.IPBlock.CIDR)
		}
	}
}

func (p *parser) validateNetPorts(d *document, f string, ports []networkingv1.NetworkPolicyPort) {
	for i, port := range ports {
		pf := fmt.Sprintf("%s.ports[%d]", f, i)
		if port.Protocol != nil {
			if _, ok := protocolOf(*port.Protocol); !ok {
				p.errorf(d, pf+".protocol", "protocol %q is not TCP, UDP or SCTP", *port.Protocol)
			}
		}
		if port.Port == nil {
			if port.EndPort != nil {
				p.errorf(d, pf+".endPort", "may not be set without port")
			}
			continue
		}
		if port.Port.Type == intstr.String {
			if msgs := validation.IsValidPortName(port.Port.StrVal); len(msgs) > 0 {
				p.errorf(d, pf+".port", "invalid port name %q: %s", port.Port.StrVal, strings.Join(msgs, "; "))
			}
			if port.EndPort != nil {
				p.errorf(d, pf+".endPort", "may not be set when port is a name")
			}
			continue
		}
		if msg := checkPort(port.Port.IntVal); msg != "" {
			p.errorf(d, pf+".port", "%s", msg)
		}
		if port.EndPort != nil {
			if msg := checkPort(*port.EndPort); msg != "" {
				p.errorf(d, pf+".endPort", "%s", msg)
			} else if *port.EndPort < port.Port.IntVal {
				p.errorf(d, pf+".endPort", "%d is below port %d", *port.EndPort, port.Port.IntVal)
			}
		}
	}
}

var (
	methodToken = regexp.MustCompile(`^[A-Z]+$`)
	headerName  = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~-]+$`)
)

func validateAuthorizationPolicy(p *parser, d *document, ap *v1alpha1.AuthorizationPolicy) {
	spec := &ap.Spec
	if spec.Selector != nil {
		p.fieldErrors(d, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, field.NewPath("spec", "selector")))
	}
	switch spec.Action {
	case "", v1alpha1.ActionAllow, v1alpha1.ActionDeny, v1alpha1.ActionAudit:
	default:
		p.errorf(d, "spec.action", "%q is not ALLOW, DENY or AUDIT", spec.Action)
	}
	for i, r := range spec.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		for j, s := range r.From {
			sf := fmt.Sprintf("%s.from[%d]", f, j)
			if len(s.Principals)+len(s.Namespaces)+len(s.ServiceAccounts)+len(s.IPBlocks) == 0 {
				p.errorf(d, sf, "a source needs principals, namespaces, serviceAccounts or ipBlocks")
			}
			for k, v := range s.Principals {
				p.checkWildcard(d, fmt.Sprintf("%s.principals[%d]", sf, k), v)
			}
			for k, v := range s.Namespaces {
				if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
					p.errorf(d, fmt.Sprintf("%s.namespaces[%d]", sf, k), "invalid namespace %q: %s", v, strings.Join(msgs, "; "))
				}
			}
			for k, v := range s.ServiceAccounts {
				ns, name, ok := strings.Cut(v, "/")
				if !ok {
					ns, name = ap.Namespace, v
				}
				if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
					p.errorf(d, fmt.Sprintf("%s.serviceAccounts[%d]", sf, k), "%q is not <namespace>/<name> or <name>", v)
				}
			}
			for k, v := range s.IPBlocks {
				if _, err := parseCIDROrIP(v); err != nil {
					p.errorf(d, fmt.Sprintf("%s.ipBlocks[%d]", sf, k), "%q is not a CIDR or an IP address", v)
				}
			}
		}
		for j, o := range r.To {
			of := fmt.Sprintf("%s.to[%d]", f, j)
			if len(o.Hosts)+len(o.Ports)+len(o.Methods)+len(o.Paths) == 0 {
				p.errorf(d, of, "an operation needs hosts, ports, methods or paths")
			}
			for k, v := range o.Hosts {
				p.checkWildcard(d, fmt.Sprintf("%s.hosts[%d]", of, k), v)
			}
			for k, v := range o.Ports {
				if v == 0 || v > 65535 {
					p.errorf(d, fmt.Sprintf("%s.ports[%d]", of, k), "port %d is not in 1-65535", v)
				}
			}
			for k, v := range o.Methods {
				if !methodToken.MatchString(v) {
					p.errorf(d, fmt.Sprintf("%s.methods[%d]", of, k), "%q is not an upper-case HTTP method", v)
				}
			}
			for k, v := range o.Paths {
				pf := fmt.Sprintf("%s.paths[%d]", of, k)
				p.checkWildcard(d, pf, v)
				if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
					p.errorf(d, pf, "%q must start with / (or * for a suffix)", v)
				}
			}
		}
		for j, c := range r.When {
			cf := fmt.Sprintf("%s.when[%d]", f, j)
			if !headerName.MatchString(c.Header) {
				p.errorf(d, cf+".header", "%q is not a lower-case header name", c.Header)
			}
			if len(c.Values) == 0 {
				p.errorf(d, cf+".values", "required")
			}
			for k, v := range c.Values {
				p.checkWildcard(d, fmt.Sprintf("%s.values[%d]", cf, k), v)
			}
		}
	}
}

// checkWildcard accepts "*", "x", "x*" and "*x" (x without '*').
func (p *parser) checkWildcard(d *document, f, v string) {
	if v == "" {
		p.errorf(d, f, "must not be empty")
		return
	}
	if v == "*" {
		return
	}
	if strings.Contains(strings.TrimSuffix(strings.TrimPrefix(v, "*"), "*"), "*") || (strings.HasPrefix(v, "*") && strings.HasSuffix(v, "*")) {
		p.errorf(d, f, "%q: '*' is allowed only as the whole value, a prefix or a suffix", v)
	}
}

func parseCIDROrIP(v string) (netip.Prefix, error) {
	if pf, err := netip.ParsePrefix(v); err == nil {
		return pf, nil
	}
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// selectorOf converts a validated metav1 selector.
func selectorOf(s *metav1.LabelSelector) *model.LabelSelector {
	if s == nil {
		return nil
	}
	out := &model.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, model.LabelRequirement{Key: e.Key, Operator: string(e.Operator), Values: e.Values})
	}
	return out
}

func netRuleOf(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) model.NetworkPolicyRule {
	var r model.NetworkPolicyRule
	for _, peer := range peers {
		mp := model.NetworkPolicyPeer{PodSelector: selectorOf(peer.PodSelector), NamespaceSelector: selectorOf(peer.NamespaceSelector)}
		if peer.IPBlock != nil {
			mp.IPBlock = &model.IPBlock{CIDR: peer.IPBlock.CIDR, Except: peer.IPBlock.Except}
		}
		r.Peers = append(r.Peers, mp)
	}
	for _, port := range ports {
		proto := corev1.ProtocolTCP
		if port.Protocol != nil {
			proto = *port.Protocol
		}
		mp := model.NetworkPolicyPort{Protocol: model.Protocol(proto)}
		if port.Port != nil {
			if port.Port.Type == intstr.String {
				mp.Name = port.Port.StrVal
			} else {
				mp.Port = uint32(port.Port.IntVal)
			}
		}
		if port.EndPort != nil {
			mp.EndPort = uint32(*port.EndPort)
		}
		r.Ports = append(r.Ports, mp)
	}
	return r
}

// netPolicyOf applies the Kubernetes defaulting of policyTypes: Ingress
// always when unset, plus Egress when egress rules exist.
func netPolicyOf(np *networkingv1.NetworkPolicy) model.NetworkPolicy {
	out := model.NetworkPolicy{Name: np.Name, Namespace: np.Namespace, PodSelector: *selectorOf(&np.Spec.PodSelector)}
	if len(np.Spec.PolicyTypes) == 0 {
		out.Ingress = true
		out.Egress = len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			out.Ingress = true
		case networkingv1.PolicyTypeEgress:
			out.Egress = true
		}
	}
	for _, r := range np.Spec.Ingress {
		out.IngressRules = append(out.IngressRules, netRuleOf(r.From, r.Ports))
	}
	for _, r := range np.Spec.Egress {
		out.EgressRules = append(out.EgressRules, netRuleOf(r.To, r.Ports))
	}
	return out
}

// buildAuthz assembles the authorization model and its warnings.
func (p *parser) buildAuthz(workloads []model.Workload) model.Authz {
	var a model.Authz
	for _, n := range p.objs.namespaces {
		if len(n.obj.Labels) > 0 {
			if a.NamespaceLabels == nil {
				a.NamespaceLabels = map[string]map[string]string{}
			}
			a.NamespaceLabels[n.obj.Name] = n.obj.Labels
		}
	}
	var netpols []model.NetworkPolicy
	for _, np := range p.objs.networkPolicies {
		netpols = append(netpols, netPolicyOf(np.obj))
	}
	a.NetworkPolicies = netpols
	for _, ap := range p.objs.authorizationPolicies {
		action := ap.obj.Spec.Action
		if action == "" {
			action = v1alpha1.ActionAllow
		}
		a.AuthorizationPolicies = append(a.AuthorizationPolicies, model.AuthorizationPolicy{
			Name: ap.obj.Name, Namespace: ap.obj.Namespace, Selector: selectorOf(ap.obj.Spec.Selector),
			Action: action, Rules: ap.obj.Spec.Rules,
		})
	}
	// DNS: an egress-isolated workload none of whose egress rules allows
	// port 53 loses name resolution, exactly as in Kubernetes.
	for _, w := range workloads {
		var first *decoded[networkingv1.NetworkPolicy]
		dns := false
		for i := range p.objs.networkPolicies {
			mp := netpols[i]
			if !mp.Egress || !mp.Selects(w) {
				continue
			}
			if first == nil {
				first = &p.objs.networkPolicies[i]
			}
			for _, r := range mp.EgressRules {
				if allowsDNS(r) {
					dns = true
				}
			}
		}
		if first != nil && !dns {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s:%d: NetworkPolicy %s/%s: WorkloadEntry %s/%s is egress-isolated and no egress rule allows port 53 (DNS): its DNS lookups are denied, as in Kubernetes",
				p.file, first.doc.line("spec"), first.obj.Namespace, first.obj.Name, w.Namespace, w.Name))
		}
	}
	slices.Sort(a.Warnings)
	return a
}

func allowsDNS(r model.NetworkPolicyRule) bool {
	if len(r.Ports) == 0 {
		return true
	}
	for _, pt := range r.Ports {
		if pt.Protocol != model.ProtocolUDP && pt.Protocol != model.ProtocolTCP {
			continue
		}
		switch {
		case pt.Port == 0 && pt.Name == "":
			return true
		case pt.Name == "dns" || pt.Name == "dns-tcp":
			return true
		case pt.Port == 53 || (pt.EndPort != 0 && pt.Port <= 53 && 53 <= pt.EndPort):
			return true
		}
	}
	return false
}
