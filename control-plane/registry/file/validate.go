package file

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/v1alpha1"
)

// The checks in this file look at one object alone; build.go checks objects
// against each other.

func validateService(p *parser, d *document, svc *corev1.Service) {
	spec := &svc.Spec
	external := spec.Type == corev1.ServiceTypeExternalName
	switch spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeExternalName:
		validateExternalName(p, d, svc)
	default:
		p.errorf(d, "spec.type", "type %q is not supported (ClusterIP, or ExternalName: an external destination)", spec.Type)
	}
	if spec.ClusterIP != "" && spec.ClusterIP != corev1.ClusterIPNone && !external {
		if _, err := netip.ParseAddr(spec.ClusterIP); err != nil {
			p.errorf(d, "spec.clusterIP", "%q is not an IP address", spec.ClusterIP)
		}
	}
	p.fieldErrors(d, metav1validation.ValidateLabels(spec.Selector, field.NewPath("spec", "selector")))
	if len(spec.Ports) == 0 && !external {
		p.errorf(d, "spec.ports", "required: a Service needs at least one port")
	}
	names := map[string]int{}
	ports := map[string]int{}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		f := fmt.Sprintf("spec.ports[%d]", i)
		switch {
		case port.Name == "" && len(spec.Ports) > 1:
			p.errorf(d, f+".name", "required when a Service has more than one port")
		case port.Name != "":
			if msgs := validation.IsDNS1123Label(port.Name); len(msgs) > 0 {
				p.errorf(d, f+".name", "invalid port name %q: %s", port.Name, strings.Join(msgs, "; "))
			} else if j, dup := names[port.Name]; dup {
				p.errorf(d, f+".name", "duplicate port name %q (also spec.ports[%d])", port.Name, j)
			}
			names[port.Name] = i
		}
		proto, ok := protocolOf(port.Protocol)
		if !ok {
			p.errorf(d, f+".protocol", "protocol %q is not TCP, UDP or SCTP", port.Protocol)
		}
		port.Protocol = proto
		if msg := checkPort(port.Port); msg != "" {
			p.errorf(d, f+".port", "%s", msg)
		} else {
			key := fmt.Sprintf("%d/%s", port.Port, proto)
			if _, dup := ports[key]; dup {
				p.errorf(d, f+".port", "duplicate port %d", port.Port)
			}
			ports[key] = i
		}
		switch port.TargetPort.Type {
		case intstr.Int:
			switch tp := port.TargetPort.IntVal; {
			case tp == 0:
				port.TargetPort = intstr.FromInt32(port.Port)
			case tp < 0 || tp > 65535:
				p.errorf(d, f+".targetPort", "port %d is not in 1-65535", tp)
			case mesh.IsReservedPort(uint32(tp)):
				p.errorf(d, f+".targetPort", "port %d is reserved for the sidecar (%d-%d)", tp, mesh.ReservedPortFirst, mesh.ReservedPortLast)
			}
		case intstr.String:
			if msgs := validation.IsValidPortName(port.TargetPort.StrVal); len(msgs) > 0 {
				p.errorf(d, f+".targetPort", "invalid port name %q: %s", port.TargetPort.StrVal, strings.Join(msgs, "; "))
			}
		}
	}
}

// validateExternalName checks what a Service of type ExternalName adds: it
// is an external destination (docs/architecture.md, Egress contract), so
// its externalName must be a DNS name the gateway can resolve; it has no
// cluster IP. A Service without ports is valid (Kubernetes allows it) and
// reaches nothing through the gateway.
func validateExternalName(p *parser, d *document, svc *corev1.Service) {
	name := svc.Spec.ExternalName
	switch {
	case name == "":
		p.errorf(d, "spec.externalName", "required for type ExternalName")
	case strings.HasPrefix(name, "*"):
		p.errorf(d, "spec.externalName", "%q: a wildcard is not a name the gateway can resolve", name)
	default:
		if err := egress.ValidHost(strings.TrimSuffix(name, ".")); err != nil {
			p.errorf(d, "spec.externalName", "%v", err)
		}
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		p.errorf(d, "spec.clusterIP", "must be empty for type ExternalName")
	}
}

// serviceAccountName is the WorkloadEntry CRD's pattern for serviceAccount.
var serviceAccountName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validateWorkloadEntry(p *parser, d *document, we *v1alpha1.WorkloadEntry) {
	spec := &we.Spec
	validateMTLSAnnotation(p, d, we.Annotations)
	if spec.Address == "" {
		p.errorf(d, "spec.address", "required")
	} else if _, err := netip.ParseAddr(spec.Address); err != nil {
		p.errorf(d, "spec.address", "%q is not an IP address", spec.Address)
	}
	if spec.ServiceAccount == "" {
		spec.ServiceAccount = "default"
	} else if !serviceAccountName.MatchString(spec.ServiceAccount) || len(spec.ServiceAccount) > 253 {
		p.errorf(d, "spec.serviceAccount", "invalid service account %q: must be lower-case letters, digits and '-'", spec.ServiceAccount)
	}
	switch {
	case spec.Weight == 0:
		spec.Weight = 1
	case spec.Weight > 128:
		p.errorf(d, "spec.weight", "weight %d is not in 1-128", spec.Weight)
	}
	if strings.Count(spec.Locality, "/") > 2 {
		p.errorf(d, "spec.locality", "%q is not region/zone/subzone", spec.Locality)
	}
	names := map[string]int{}
	ports := map[string]int{}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		f := fmt.Sprintf("spec.ports[%d]", i)
		if port.Name == "" {
			p.errorf(d, f+".name", "required")
		} else if msgs := validation.IsValidPortName(port.Name); len(msgs) > 0 {
			p.errorf(d, f+".name", "invalid port name %q: %s", port.Name, strings.Join(msgs, "; "))
		} else if j, dup := names[port.Name]; dup {
			p.errorf(d, f+".name", "duplicate port name %q (also spec.ports[%d])", port.Name, j)
		}
		names[port.Name] = i
		switch port.Protocol {
		case "":
			port.Protocol = string(corev1.ProtocolTCP)
		case string(corev1.ProtocolTCP), string(corev1.ProtocolUDP):
		default:
			p.errorf(d, f+".protocol", "protocol %q is not TCP or UDP", port.Protocol)
		}
		if msg := checkPort(port.Port); msg != "" {
			p.errorf(d, f+".port", "%s", msg)
			continue
		}
		if mesh.IsReservedPort(uint32(port.Port)) {
			p.errorf(d, f+".port", "port %d is reserved for the sidecar (%d-%d)", port.Port, mesh.ReservedPortFirst, mesh.ReservedPortLast)
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if j, dup := ports[key]; dup {
			p.errorf(d, f+".port", "duplicate port %d (also spec.ports[%d])", port.Port, j)
		}
		ports[key] = i
	}
}

func validateEndpointSlice(p *parser, d *document, es *discoveryv1.EndpointSlice) {
	if es.Labels[discoveryv1.LabelServiceName] == "" {
		p.errorf(d, "metadata.labels", "label %s is required: it names the Service of the slice", discoveryv1.LabelServiceName)
	}
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
	case "":
		p.errorf(d, "addressType", "required")
	default:
		p.errorf(d, "addressType", "address type %q is not supported (IPv4 or IPv6)", es.AddressType)
	}
	names := map[string]int{}
	for i := range es.Ports {
		port := &es.Ports[i]
		f := fmt.Sprintf("ports[%d]", i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if j, dup := names[name]; dup {
			p.errorf(d, f+".name", "duplicate port name %q (also ports[%d])", name, j)
		}
		names[name] = i
		if port.Port == nil {
			p.errorf(d, f+".port", "required")
		} else if msg := checkPort(*port.Port); msg != "" {
			p.errorf(d, f+".port", "%s", msg)
		}
		var proto corev1.Protocol
		if port.Protocol != nil {
			proto = *port.Protocol
		}
		proto, ok := protocolOf(proto)
		if !ok {
			p.errorf(d, f+".protocol", "protocol %q is not TCP, UDP or SCTP", proto)
		}
		port.Protocol = &proto
	}
	for i, ep := range es.Endpoints {
		f := fmt.Sprintf("endpoints[%d]", i)
		if len(ep.Addresses) == 0 {
			p.errorf(d, f+".addresses", "required")
		}
		for j, a := range ep.Addresses {
			ip, err := netip.ParseAddr(a)
			switch {
			case err != nil:
				p.errorf(d, fmt.Sprintf("%s.addresses[%d]", f, j), "%q is not an IP address", a)
			case es.AddressType == discoveryv1.AddressTypeIPv4 && !ip.Is4(),
				es.AddressType == discoveryv1.AddressTypeIPv6 && !ip.Is6():
				p.errorf(d, fmt.Sprintf("%s.addresses[%d]", f, j), "%q is not an %s address", a, es.AddressType)
			}
		}
	}
}
