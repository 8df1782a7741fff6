package model

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

// State is one consistent view of the mesh. Build it with NewState; treat it
// and everything reachable from it as read-only.
type State struct {
	// Services sorted by namespace, then name.
	Services []Service
	// Workloads sorted by namespace, then name.
	Workloads []Workload
	// Routes (HTTPRoutes bound to Services) sorted by namespace, then name;
	// set with WithTraffic.
	Routes []HTTPRoute
	// Policies (one TrafficPolicy per Service at most) sorted by namespace,
	// then target Service; set with WithTraffic.
	Policies []TrafficPolicy
	// Namespaces that the registry declares (with annotations), sorted by
	// name; set with WithNamespaces.
	Namespaces []Namespace
	// Telemetry, when set (the registry's mesh ConfigMap), replaces the
	// mesh config's tracing and access log; set with WithTelemetry.
	Telemetry *meshconfig.Telemetry
	// Authz holds NetworkPolicies, AuthorizationPolicies and namespace
	// labels; set with WithAuthz (policy.go).
	Authz Authz
	// Egress holds the ExternalServices sorted by namespace, then name;
	// set with WithEgress (egress.go).
	Egress []ExternalService
}

// Service is a Kubernetes-style service: a name that load-balances over the
// endpoints of each of its ports.
type Service struct {
	Name      string
	Namespace string
	// ClusterIP is the service's virtual IP, or "" when it has none
	// (unset or headless).
	ClusterIP string
	// Selector picks the workloads behind the service; nil for a service
	// whose endpoints come from EndpointSlices only.
	Selector map[string]string
	// Ports sorted by port number.
	Ports []ServicePort
}

// Protocol of a port, as Kubernetes spells it.
type Protocol string

// Protocols.
const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// ServicePort is one port of a service and the endpoints behind it.
type ServicePort struct {
	// Name of the port; may be empty when the service has one port.
	Name     string
	Port     uint32
	Protocol Protocol
	// TargetPort as written in the service (a number or a workload port
	// name); each endpoint carries the port it resolved to.
	TargetPort TargetPort
	// Endpoints sorted by address, then port.
	Endpoints []Endpoint
}

// TargetPort is a number or a name; exactly one is set.
type TargetPort struct {
	Number uint32
	Name   string
}

// String returns the number or the name.
func (t TargetPort) String() string {
	if t.Name != "" {
		return t.Name
	}
	return uitoa(t.Number)
}

// Endpoint is one address behind a service port.
type Endpoint struct {
	// Address is the IP of the endpoint.
	Address string
	// Port is the resolved target port on that address.
	Port uint32
	// Workload is the name of the mesh workload at this address, or "" for
	// an endpoint that runs no sidecar (dialled directly).
	Workload string
	// Namespace of the workload (the service's namespace).
	Namespace string
	// ServiceAccount of the workload; "" when Workload is "".
	ServiceAccount string
	// Ready, Serving and Terminating follow EndpointSlice conditions.
	Ready, Serving, Terminating bool
	Locality                    Locality
	// Weight for load balancing, at least 1.
	Weight uint32
}

// Sidecar reports whether the endpoint runs a Weft sidecar.
func (e Endpoint) Sidecar() bool { return e.Workload != "" }

// Identity is the endpoint's SPIFFE ID in the trust domain, or "" when it
// runs no sidecar.
func (e Endpoint) Identity(trustDomain string) string {
	if !e.Sidecar() {
		return ""
	}
	return mesh.SPIFFEID(trustDomain, e.Namespace, e.ServiceAccount)
}

// Health of an endpoint, as the load balancer should treat it.
type Health int

// Health values.
const (
	// Healthy endpoints take new requests.
	Healthy Health = iota
	// Unhealthy endpoints take none.
	Unhealthy
	// Draining endpoints are terminating but still serving: no new
	// requests unless nothing else is left.
	Draining
)

// Health maps the EndpointSlice conditions to a Health.
func (e Endpoint) Health() Health {
	switch {
	case e.Ready:
		return Healthy
	case e.Terminating && e.Serving:
		return Draining
	default:
		return Unhealthy
	}
}

// Locality is region/zone/subzone; any part may be empty.
type Locality struct {
	Region, Zone, SubZone string
}

// ParseLocality splits "region/zone/subzone" (fewer parts allowed).
func ParseLocality(s string) Locality {
	parts := strings.SplitN(s, "/", 3)
	var l Locality
	for i, p := range parts {
		switch i {
		case 0:
			l.Region = p
		case 1:
			l.Zone = p
		case 2:
			l.SubZone = p
		}
	}
	return l
}

// String joins the parts with "/", trimming empty trailing parts.
func (l Locality) String() string {
	return strings.TrimRight(l.Region+"/"+l.Zone+"/"+l.SubZone, "/")
}

// Workload is one mesh workload: a WorkloadEntry (or, later, a Pod). It runs
// one sidecar, whose xDS node id is NodeID().
type Workload struct {
	Name           string
	Namespace      string
	ServiceAccount string
	// Address is the workload's IP; its sidecar listens there too.
	Address     string
	Labels      map[string]string
	Annotations map[string]string
	// Ports the workload declares, sorted by number.
	Ports    []WorkloadPort
	Locality Locality
	// Weight for load balancing, at least 1.
	Weight uint32
	// InboundPorts are the workload ports that at least one Service
	// targets, sorted; the sidecar's inbound listener has a filter chain for
	// each.
	InboundPorts []uint32
}

// WorkloadPort is a named port of a workload.
type WorkloadPort struct {
	Name     string
	Port     uint32
	Protocol Protocol
}

// NodeID is the xDS node id of the workload's sidecar.
func (w Workload) NodeID() string { return mesh.NodeID(w.Name, w.Namespace) }

// Identity is the workload's SPIFFE ID in the trust domain.
func (w Workload) Identity(trustDomain string) string {
	return mesh.SPIFFEID(trustDomain, w.Namespace, w.ServiceAccount)
}

// NewState returns a State holding deep copies of services and workloads,
// sorted into the model's deterministic order.
func NewState(services []Service, workloads []Workload) State {
	s := State{
		Services:  make([]Service, len(services)),
		Workloads: make([]Workload, len(workloads)),
	}
	for i, svc := range services {
		s.Services[i] = svc.clone()
	}
	for i, w := range workloads {
		s.Workloads[i] = w.clone()
	}
	slices.SortFunc(s.Services, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.Workloads, func(a, b Workload) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return s
}

// Workload finds the workload of an xDS node id.
func (s State) Workload(nodeID string) (Workload, bool) {
	name, ns, err := mesh.ParseNodeID(nodeID)
	if err != nil {
		return Workload{}, false
	}
	i, ok := slices.BinarySearchFunc(s.Workloads, [2]string{ns, name}, func(w Workload, k [2]string) int {
		return cmp.Or(cmp.Compare(w.Namespace, k[0]), cmp.Compare(w.Name, k[1]))
	})
	if !ok {
		return Workload{}, false
	}
	return s.Workloads[i], true
}

// Service finds a service by namespace and name.
func (s State) Service(namespace, name string) (Service, bool) {
	i, ok := slices.BinarySearchFunc(s.Services, [2]string{namespace, name}, func(v Service, k [2]string) int {
		return cmp.Or(cmp.Compare(v.Namespace, k[0]), cmp.Compare(v.Name, k[1]))
	})
	if !ok {
		return Service{}, false
	}
	return s.Services[i], true
}

func (svc Service) clone() Service {
	svc.Selector = maps.Clone(svc.Selector)
	ports := make([]ServicePort, len(svc.Ports))
	for i, p := range svc.Ports {
		p.Endpoints = slices.Clone(p.Endpoints)
		slices.SortFunc(p.Endpoints, func(a, b Endpoint) int {
			return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		ports[i] = p
	}
	slices.SortFunc(ports, func(a, b ServicePort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
	})
	svc.Ports = ports
	return svc
}

func (w Workload) clone() Workload {
	w.Labels = maps.Clone(w.Labels)
	w.Annotations = maps.Clone(w.Annotations)
	w.Ports = slices.Clone(w.Ports)
	slices.SortFunc(w.Ports, func(a, b WorkloadPort) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Name, b.Name))
	})
	w.InboundPorts = slices.Clone(w.InboundPorts)
	slices.Sort(w.InboundPorts)
	w.InboundPorts = slices.Compact(w.InboundPorts)
	return w
}

func uitoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
