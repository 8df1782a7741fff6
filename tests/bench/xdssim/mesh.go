package xdssim

import (
	"fmt"
	"io"
	"strings"
)

// MeshSpec is the size and shape of the generated file registry.
type MeshSpec struct {
	// Services is the number of Services (one TCP port each), spread over
	// Namespaces namespaces.
	Services   int
	Namespaces int
	// EndpointsPerService WorkloadEntries back each Service.
	EndpointsPerService int
	// Reach, when > 0, gives every namespace an egress NetworkPolicy that
	// allows its workloads to reach only the Services of Reach namespaces
	// (its own and the next ones) plus DNS: the egress allowlist that
	// scopes each proxy's config. 0 = no policy, every proxy gets the whole mesh.
	Reach int
}

// Endpoints is the number of WorkloadEntries (= endpoints = possible proxies).
func (m MeshSpec) Endpoints() int { return m.Services * m.EndpointsPerService }

// Workload names one generated WorkloadEntry.
type Workload struct {
	Name, Namespace, ServiceAccount string
	Service                         int
}

// NodeID is its xDS node id.
func (w Workload) NodeID() string { return w.Name + "." + w.Namespace }

func (m MeshSpec) ns(svc int) string { return fmt.Sprintf("ns-%03d", svc%m.Namespaces) }

// Workload returns the i-th WorkloadEntry (0 <= i < Endpoints()). Entries
// are interleaved over services so that the first N cover every service.
func (m MeshSpec) Workload(i int) Workload {
	svc := i % m.Services
	rep := i / m.Services
	return Workload{
		Name:           fmt.Sprintf("svc-%04d-%d", svc, rep),
		Namespace:      m.ns(svc),
		ServiceAccount: fmt.Sprintf("svc-%04d", svc),
		Service:        svc,
	}
}

// address of the i-th WorkloadEntry; gen moves an endpoint (churn): each
// generation gives a few entries a new address.
func address(i, gen int) string {
	n := i + 1 + gen*1_000_000
	return fmt.Sprintf("10.%d.%d.%d", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
}

// Write writes the mesh file. moved maps WorkloadEntry index -> generation
// of its address (absent = 0): changing one entry's generation is one
// endpoint change for the one Service it backs.
func (m MeshSpec) Write(w io.Writer, moved map[int]int) error {
	var b strings.Builder
	b.Grow(m.Endpoints() * 260)
	for n := 0; n < m.Namespaces; n++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-%03d}\n---\n", n)
		if m.Reach > 0 {
			fmt.Fprintf(&b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: egress, namespace: ns-%03d}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 53, protocol: UDP}]\n", n)
			b.WriteString("  - to:\n")
			for r := 0; r < m.Reach; r++ {
				fmt.Fprintf(&b, "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns-%03d}}\n", (n+r)%m.Namespaces)
			}
			b.WriteString("---\n")
		}
	}
	for s := 0; s < m.Services; s++ {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: svc-%04d, namespace: %s}\nspec:\n  selector: {app: svc-%04d}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n", s, m.ns(s), s)
	}
	for i := 0; i < m.Endpoints(); i++ {
		wl := m.Workload(i)
		fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: %s, namespace: %s, labels: {app: svc-%04d}}\nspec: {address: %s, serviceAccount: %s, ports: [{name: http, port: 8080}]}\n---\n",
			wl.Name, wl.Namespace, wl.Service, address(i, moved[i]), wl.ServiceAccount)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
