package file

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// build checks the objects against each other and assembles the State.
// Every object it sees has passed its own validation.
func (p *parser) build() model.State {
	o := &p.objs

	// Workloads: addresses are unique across the file (in local mode they
	// are loopback addresses that the sidecars bind).
	workloads := make([]model.Workload, len(o.workloadEntries))
	byAddress := map[netip.Addr]decoded[v1alpha1.WorkloadEntry]{}
	for i, we := range o.workloadEntries {
		addr, _ := netip.ParseAddr(we.obj.Spec.Address)
		if other, dup := byAddress[addr]; dup {
			p.errorf(we.doc, "spec.address", "address %s is already used by WorkloadEntry %s/%s (line %d)",
				we.obj.Spec.Address, other.obj.Namespace, other.obj.Name, other.doc.line("spec.address"))
		}
		byAddress[addr] = we
		workloads[i] = workloadOf(we.obj)
	}
	if p.kube != nil {
		workloads = append(workloads, p.kube.workloads...) // pods may share addresses (hostNetwork)
	}
	inbound := make([]map[uint32]bool, len(workloads))
	byNamespace := map[string][]int{} // namespace -> indexes in workloads, ascending
	for i, w := range workloads {
		byNamespace[w.Namespace] = append(byNamespace[w.Namespace], i)
	}

	services := make([]model.Service, 0, len(o.services))
	index := map[string]int{} // "ns/name" -> index in services
	clusterIPs := map[netip.Addr]decoded[corev1.Service]{}
	for _, s := range o.services {
		svc := s.obj
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue // an external destination (buildEgress): no cluster, no endpoints
		}
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
			if other, dup := clusterIPs[ip]; dup {
				p.errorf(s.doc, "spec.clusterIP", "cluster IP %s is already used by Service %s/%s (line %d)",
					svc.Spec.ClusterIP, other.obj.Namespace, other.obj.Name, other.doc.line("spec.clusterIP"))
			}
			clusterIPs[ip] = s
		}
		ms := model.Service{Name: svc.Name, Namespace: svc.Namespace}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			ms.ClusterIP = svc.Spec.ClusterIP
		}
		if len(svc.Spec.Selector) > 0 {
			ms.Selector = svc.Spec.Selector
		}
		for _, sp := range svc.Spec.Ports {
			mp := model.ServicePort{Name: sp.Name, Port: uint32(sp.Port), Protocol: model.Protocol(sp.Protocol)}
			if sp.TargetPort.Type == intstr.String {
				mp.TargetPort.Name = sp.TargetPort.StrVal
			} else {
				mp.TargetPort.Number = uint32(sp.TargetPort.IntVal)
			}
			ms.Ports = append(ms.Ports, mp)
		}
		if ms.Selector != nil {
			p.selectWorkloads(s, &ms, workloads, byNamespace[ms.Namespace], inbound)
		}
		index[svc.Namespace+"/"+svc.Name] = len(services)
		services = append(services, ms)
	}
	for i := range workloads {
		for port := range inbound[i] {
			workloads[i].InboundPorts = append(workloads[i].InboundPorts, port)
		}
	}

	for _, es := range o.endpointSlices {
		svcName := es.obj.Labels[discoveryv1.LabelServiceName]
		f := "metadata.labels[" + discoveryv1.LabelServiceName + "]"
		i, ok := index[es.obj.Namespace+"/"+svcName]
		if !ok {
			p.errorf(es.doc, f, "no Service %s/%s in the file", es.obj.Namespace, svcName)
			continue
		}
		p.sliceEndpoints(es, &services[i], byAddress)
	}
	byName := make(map[string]*model.Service, len(services))
	for i := range services {
		byName[services[i].Namespace+"/"+services[i].Name] = &services[i]
	}
	routes, policies := p.buildTraffic(byName)
	return model.NewState(services, workloads).WithTraffic(routes, policies).WithNamespaces(p.namespaces()).WithTelemetry(p.telemetry()).
		WithAuthz(p.buildAuthz(workloads)).WithEgress(p.buildEgress())
}

func workloadOf(we *v1alpha1.WorkloadEntry) model.Workload {
	w := model.Workload{
		Name:           we.Name,
		Namespace:      we.Namespace,
		ServiceAccount: we.Spec.ServiceAccount,
		Address:        we.Spec.Address,
		Labels:         we.Labels,
		Annotations:    we.Annotations,
		Locality:       model.ParseLocality(we.Spec.Locality),
		Weight:         we.Spec.Weight,
	}
	for _, p := range we.Spec.Ports {
		w.Ports = append(w.Ports, model.WorkloadPort{Name: p.Name, Port: uint32(p.Port), Protocol: model.Protocol(p.Protocol)})
	}
	return w
}

// selectWorkloads adds the workloads a service's selector matches (in its
// namespace) as endpoints of each of its ports, resolving named target
// ports against each workload's ports. inNamespace indexes the workloads
// of the service's namespace.
func (p *parser) selectWorkloads(s decoded[corev1.Service], ms *model.Service, workloads []model.Workload, inNamespace []int, inbound []map[uint32]bool) {
	sel := labels.SelectorFromSet(ms.Selector)
	matched := 0
	for _, wi := range inNamespace {
		w := workloads[wi]
		if w.Namespace != ms.Namespace || !sel.Matches(labels.Set(w.Labels)) {
			continue
		}
		matched++
		pod := p.isPod(w) // a pod's endpoints come from EndpointSlices: only its inbound ports here
		for pi := range ms.Ports {
			sp := &ms.Ports[pi]
			port := sp.TargetPort.Number
			if sp.TargetPort.Name != "" {
				port = 0
				for _, wp := range w.Ports {
					if wp.Name == sp.TargetPort.Name {
						port = wp.Port
					}
				}
				if port == 0 && pod {
					continue // Kubernetes leaves such a pod out of the Service too
				}
				if port == 0 {
					p.errorf(s.doc, fmt.Sprintf("spec.ports[%d].targetPort", pi),
						"WorkloadEntry %s/%s has no port named %q", w.Namespace, w.Name, sp.TargetPort.Name)
					continue
				}
			}
			if !pod {
				sp.Endpoints = append(sp.Endpoints, model.Endpoint{
					Address:        w.Address,
					Port:           port,
					Workload:       w.Name,
					Namespace:      w.Namespace,
					ServiceAccount: w.ServiceAccount,
					Ready:          true,
					Serving:        true,
					Locality:       w.Locality,
					Weight:         w.Weight,
				})
			}
			if sp.Protocol == model.ProtocolTCP {
				if inbound[wi] == nil {
					inbound[wi] = map[uint32]bool{}
				}
				inbound[wi][port] = true
			}
		}
	}
	if matched == 0 && p.kube == nil {
		p.errorf(s.doc, "spec.selector", "selects no WorkloadEntry in namespace %s", ms.Namespace)
	}
}

// sliceEndpoints adds the endpoints of an EndpointSlice to its service.
// Slices describe endpoints that run no sidecar; a mesh workload is
// described by its WorkloadEntry and reached through a selector.
func (p *parser) sliceEndpoints(es decoded[discoveryv1.EndpointSlice], ms *model.Service, byAddress map[netip.Addr]decoded[v1alpha1.WorkloadEntry]) {
	for i, sp := range es.obj.Ports {
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		target := -1
		for j, svcPort := range ms.Ports {
			if svcPort.Name == name && string(svcPort.Protocol) == string(*sp.Protocol) {
				target = j
			}
		}
		if target < 0 {
			p.errorf(es.doc, fmt.Sprintf("ports[%d].name", i), "Service %s/%s has no %s port named %q", ms.Namespace, ms.Name, *sp.Protocol, name)
			continue
		}
		for j, ep := range es.obj.Endpoints {
			addr := ep.Addresses[0]
			if ip, _ := netip.ParseAddr(addr); byAddress[ip].obj != nil {
				we := byAddress[ip]
				p.errorf(es.doc, fmt.Sprintf("endpoints[%d].addresses[0]", j),
					"%s is the address of WorkloadEntry %s/%s: select it with the Service's selector instead", addr, we.obj.Namespace, we.obj.Name)
				continue
			}
			if hasEndpoint(ms.Ports[target].Endpoints, addr, uint32(*sp.Port)) {
				continue // listed by another slice too
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ready
			if ep.Conditions.Serving != nil {
				serving = *ep.Conditions.Serving
			}
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			var loc model.Locality
			if ep.Zone != nil {
				loc.Zone = *ep.Zone
			}
			me := model.Endpoint{
				Address:     addr,
				Port:        uint32(*sp.Port),
				Namespace:   ms.Namespace,
				Ready:       ready,
				Serving:     serving,
				Terminating: terminating,
				Locality:    loc,
				Weight:      1,
			}
			if w, ok := p.podOf(ep, ms.Namespace); ok { // a pod with a sidecar
				me.Workload, me.Namespace, me.ServiceAccount = w.Name, w.Namespace, w.ServiceAccount
				if w.Locality != (model.Locality{}) {
					me.Locality = w.Locality
				}
				if w.Weight > 0 {
					me.Weight = w.Weight
				}
			}
			ms.Ports[target].Endpoints = append(ms.Ports[target].Endpoints, me)
		}
	}
}

func hasEndpoint(eps []model.Endpoint, addr string, port uint32) bool {
	for _, e := range eps {
		if e.Address == addr && e.Port == port {
			return true
		}
	}
	return false
}
