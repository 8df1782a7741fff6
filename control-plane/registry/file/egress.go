package file

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// validateExternalService checks one weft.dev/v1alpha1 ExternalService
// (docs/architecture.md, Egress contract). Claims of one host and port by
// two objects are checked across the file in buildEgress.
func validateExternalService(p *parser, d *document, es *v1alpha1.ExternalService) {
	s := es.Spec
	if len(s.Hosts) == 0 {
		p.errorf(d, "spec.hosts", "required")
	}
	for i, h := range s.Hosts {
		if err := egress.ValidHost(h); err != nil {
			p.errorf(d, fmt.Sprintf("spec.hosts[%d]", i), "%v (exact, or \"*.\" and a name)", err)
		}
	}
	if len(s.Ports) == 0 {
		p.errorf(d, "spec.ports", "required")
	}
	seen := map[int32]bool{}
	for i, port := range s.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		if msg := checkPort(port.Number); msg != "" {
			p.errorf(d, f+".number", "%s", msg)
		}
		if seen[port.Number] {
			p.errorf(d, f+".number", "duplicate port %d", port.Number)
		}
		seen[port.Number] = true
		switch port.Protocol {
		case v1alpha1.ExternalHTTP, v1alpha1.ExternalTLS, v1alpha1.ExternalTCP:
		default:
			p.errorf(d, f+".protocol", "%q is not HTTP, TLS or TCP", port.Protocol)
		}
		if port.TargetPort != 0 {
			if msg := checkPort(port.TargetPort); msg != "" {
				p.errorf(d, f+".targetPort", "%s", msg)
			}
		}
		if port.OriginateTLS && port.Protocol != v1alpha1.ExternalHTTP {
			p.errorf(d, f+".originateTLS", "only for HTTP ports")
		}
	}
	switch s.Resolution {
	case "", v1alpha1.ResolutionDNS:
		if len(s.Endpoints) > 0 {
			p.errorf(d, "spec.endpoints", "only with resolution STATIC")
		}
	case v1alpha1.ResolutionStatic:
		if len(s.Endpoints) == 0 {
			p.errorf(d, "spec.endpoints", "required with resolution STATIC")
		}
	default:
		p.errorf(d, "spec.resolution", "%q is not DNS or STATIC", s.Resolution)
	}
	for i, e := range s.Endpoints {
		if _, err := netip.ParseAddr(e.Address); err != nil {
			p.errorf(d, fmt.Sprintf("spec.endpoints[%d].address", i), "%q is not an IP address", e.Address)
		}
	}
	for i, a := range s.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				p.errorf(d, fmt.Sprintf("spec.addresses[%d]", i), "%q is not a CIDR or an IP address", a)
			}
		}
	}
	if s.MaxConnections != nil && *s.MaxConnections < 1 {
		p.errorf(d, "spec.maxConnections", "must be at least 1")
	}
	for i, r := range s.Allow {
		f := fmt.Sprintf("spec.allow[%d]", i)
		if len(r.From) == 0 {
			p.errorf(d, f+".from", "required")
		}
		for j, src := range r.From {
			sf := fmt.Sprintf("%s.from[%d]", f, j)
			if len(src.Principals)+len(src.Namespaces)+len(src.ServiceAccounts) == 0 {
				p.errorf(d, sf, "names no source (principals, namespaces or serviceAccounts)")
			}
			for k, n := range src.Namespaces {
				if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
					p.errorf(d, fmt.Sprintf("%s.namespaces[%d]", sf, k), "invalid namespace %q", n)
				}
			}
			for k, sa := range src.ServiceAccounts {
				ns, name, ok := strings.Cut(sa, "/")
				if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
					p.errorf(d, fmt.Sprintf("%s.serviceAccounts[%d]", sf, k), "%q is not <namespace>/<name>", sa)
				}
			}
			for k, pr := range src.Principals {
				if pr != "*" && !strings.HasPrefix(pr, "spiffe://") {
					p.errorf(d, fmt.Sprintf("%s.principals[%d]", sf, k), "%q is not a SPIFFE ID pattern (spiffe://..., prefix* or *)", pr)
				}
			}
		}
		for k, port := range r.Ports {
			if !seen[port] {
				p.errorf(d, fmt.Sprintf("%s.ports[%d]", f, k), "port %d is not one of spec.ports", port)
			}
		}
	}
}

// buildEgress turns the ExternalServices into the model, and reports a
// host and port claimed by two of them.
func (p *parser) buildEgress() []model.ExternalService {
	var out []model.ExternalService
	claimed := map[string]string{}
	for _, de := range p.objs.externalServices {
		es := de.obj
		name := es.Namespace + "/" + es.Name
		m := model.ExternalService{
			Name: es.Name, Namespace: es.Namespace, Hosts: es.Spec.Hosts,
			Resolution: string(es.Spec.Resolution), Addresses: es.Spec.Addresses,
			CACertificates: es.Spec.CACertificates,
		}
		if m.Resolution == "" {
			m.Resolution = string(v1alpha1.ResolutionDNS)
		}
		if es.Spec.MaxConnections != nil {
			m.MaxConnections = uint32(*es.Spec.MaxConnections) //nolint:gosec // G115: validated >= 1.
		}
		for _, e := range es.Spec.Endpoints {
			m.Endpoints = append(m.Endpoints, e.Address)
		}
		ok := true
		for i, port := range es.Spec.Ports {
			m.Ports = append(m.Ports, model.ExternalPort{
				Number: uint32(port.Number), Name: port.Name, Protocol: string(port.Protocol), //nolint:gosec // G115: validated port.
				TargetPort: uint32(port.TargetPort), OriginateTLS: port.OriginateTLS, //nolint:gosec // G115: validated port.
			})
			for _, h := range es.Spec.Hosts {
				key := egress.NormalizeHost(h) + ":" + strconv.Itoa(int(port.Number))
				if first, dup := claimed[key]; dup {
					p.errorf(de.doc, fmt.Sprintf("spec.ports[%d]", i), "host %q port %d is already claimed by ExternalService %s", h, port.Number, first)
					ok = false
				}
				claimed[key] = name
			}
		}
		for _, r := range es.Spec.Allow {
			mr := model.EgressRule{Methods: r.Methods, Paths: r.Paths}
			for _, src := range r.From {
				mr.Principals = append(mr.Principals, src.Principals...)
				mr.Namespaces = append(mr.Namespaces, src.Namespaces...)
				mr.ServiceAccounts = append(mr.ServiceAccounts, src.ServiceAccounts...)
			}
			for _, port := range r.Ports {
				mr.Ports = append(mr.Ports, uint32(port)) //nolint:gosec // G115: validated port.
			}
			m.Allow = append(m.Allow, mr)
		}
		if pol, has := p.egressPolicies["ExternalService "+name]; has {
			m.Policy = &pol
		}
		if ok {
			out = append(out, m)
		}
	}
	return append(out, p.buildExternalNames(claimed)...)
}

// buildExternalNames turns the Services of type ExternalName into external
// destinations: host spec.externalName, resolution DNS, one port per TCP
// Service port (protocol from appProtocol or the port name, see
// externalNameProtocol), reachable by every source of the Service's own
// namespace. The external name is a host of the first claimant only
// (ExternalServices first, then these Services by namespace/name); a later
// one keeps its mesh names (translate adds them) and is not an error, as
// two namespaces may well alias the same external API.
func (p *parser) buildExternalNames(claimed map[string]string) []model.ExternalService {
	var svcs []*corev1.Service
	for _, s := range p.objs.services {
		if s.obj.Spec.Type == corev1.ServiceTypeExternalName {
			svcs = append(svcs, s.obj)
		}
	}
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	var out []model.ExternalService
	for _, svc := range svcs {
		host := egress.NormalizeHost(svc.Spec.ExternalName)
		m := model.ExternalService{
			Name: svc.Name, Namespace: svc.Namespace, ExternalName: host,
			Resolution: string(v1alpha1.ResolutionDNS),
			Allow:      []model.EgressRule{{Namespaces: []string{svc.Namespace}}},
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			mp := model.ExternalPort{Number: uint32(sp.Port), Name: sp.Name, Protocol: externalNameProtocol(sp)} //nolint:gosec // G115: validated port.
			if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != sp.Port {
				mp.TargetPort = uint32(sp.TargetPort.IntVal) //nolint:gosec // G115: validated port.
			}
			m.Ports = append(m.Ports, mp)
		}
		if len(m.Ports) == 0 {
			continue
		}
		if pol, has := p.egressPolicies["Service "+svc.Namespace+"/"+svc.Name]; has {
			m.Policy = &pol
		}
		owner := true
		for _, mp := range m.Ports {
			if _, dup := claimed[host+":"+strconv.FormatUint(uint64(mp.Number), 10)]; dup {
				owner = false
			}
		}
		if owner {
			m.Hosts = []string{host}
			for _, mp := range m.Ports {
				claimed[host+":"+strconv.FormatUint(uint64(mp.Number), 10)] = "Service " + svc.Namespace + "/" + svc.Name
			}
		}
		out = append(out, m)
	}
	return out
}

// externalNameProtocol is how the gateway carries an ExternalName Service
// port: appProtocol when set, else the port name's prefix before "-"
// ("https", "tls" -> TLS; "tcp" -> TCP); anything else is HTTP.
func externalNameProtocol(sp corev1.ServicePort) string {
	name := sp.Name
	if sp.AppProtocol != nil && *sp.AppProtocol != "" {
		name = *sp.AppProtocol
	}
	prefix, _, _ := strings.Cut(strings.ToLower(name), "-")
	switch prefix {
	case "https", "tls":
		return egress.ProtocolTLS
	case "tcp":
		return egress.ProtocolTCP
	}
	return egress.ProtocolHTTP
}
