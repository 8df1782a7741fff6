package translate

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/api/authz"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// NetworkPolicy truth tables: the cases of the upstream conformance work,
// evaluated over the translated allowlists with the evaluator the sidecars
// run (api/authz). The mesh is cyclonus' and the Kubernetes e2e suite's:
// namespaces x, y, z (labelled ns: <name>), pods a, b, c in each (labelled
// pod: <name>), each serving TCP 80 ("serve-80-tcp") and 81
// ("serve-81-tcp") behind a Service s-<pod>. Every pod has its own service
// account except in z, where a, b and c share one (so a selector that picks
// some of them needs identity AND source address).
//
// A connection from -> to:port is allowed when the source's egress allows
// it (its outbound RBAC and its scope: the destination's virtual host and
// endpoint are in its config) and the destination's ingress allows it (the
// inbound chain's RBAC for that port, with the source's SPIFFE ID and IP).
//
// Sources of the cases (names as upstream spells them):
//   - k8s e2e: kubernetes/kubernetes test/e2e/network/netpol/network_policy.go
//   - cyclonus: kubernetes-sigs/network-policy-api cmd/cyclonus (probe
//     generator "conflict", "peers", "port-protocol", "policy-types" cases)

var (
	tNamespaces = []string{"x", "y", "z"}
	tPods       = []string{"a", "b", "c"}
)

func truthMesh(policies string) string {
	var b strings.Builder
	for ni, ns := range tNamespaces {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %q, labels: {ns: %q}}\n---\n", ns, ns)
		for pi, pod := range tPods {
			sa := pod
			if ns == "z" {
				sa = "shared"
			}
			fmt.Fprintf(&b, `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: %[1]s, namespace: %[2]q, labels: {pod: %[1]s}}
spec:
  address: 10.0.%[3]d.%[4]d
  serviceAccount: %[5]s
  ports: [{name: serve-80-tcp, port: 80}, {name: serve-81-tcp, port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: s-%[1]s, namespace: %[2]q}
spec:
  selector: {pod: %[1]s}
  ports: [{name: p80, port: 80, targetPort: 80}, {name: p81, port: 81, targetPort: 81}]
---
`, pod, ns, ni+1, pi+1, sa)
		}
	}
	b.WriteString(policies)
	return b.String()
}

// rbacEngine compiles the RBAC filters of an HCM.
func rbacEngine(t *testing.T, m *hcm.HttpConnectionManager) *authz.Engine {
	t.Helper()
	var fs []authz.Filter
	for _, f := range m.GetHttpFilters() {
		c := &rbacfilter.RBAC{}
		if f.GetTypedConfig().MessageIs(c) {
			if err := f.GetTypedConfig().UnmarshalTo(c); err != nil {
				t.Fatal(err)
			}
			fs = append(fs, authz.Filter{Name: f.GetName(), Config: c})
		}
	}
	e, err := authz.Compile(fs)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

type proxyView struct {
	w        model.Workload
	outbound *authz.Engine
	inbound  map[uint32]*authz.Engine
	vhosts   map[string]bool // "<fqdn>:<port>"
	eps      map[string]bool // "<cluster>|<ip>"
}

func viewOf(t *testing.T, st model.State, w model.Workload) proxyView {
	t.Helper()
	res, err := Build(st, w, meshconfig.Default())
	if err != nil {
		t.Fatalf("Build(%s): %v", w.NodeID(), err)
	}
	v := proxyView{w: w, inbound: map[uint32]*authz.Engine{}, vhosts: map[string]bool{}, eps: map[string]bool{}}
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			m := &hcm.HttpConnectionManager{}
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			if l.GetName() == mesh.ListenerOutbound {
				v.outbound = rbacEngine(t, m)
			} else {
				v.inbound[fc.GetFilterChainMatch().GetDestinationPort().GetValue()] = rbacEngine(t, m)
			}
		}
	}
	for _, rc := range res.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			v.vhosts[vh.GetName()] = true
		}
	}
	for _, cla := range res.Endpoints {
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				v.eps[cla.GetClusterName()+"|"+e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = true
			}
		}
	}
	return v
}

// connect reports whether from may open a request to to:port.
func connect(views map[string]proxyView, from, to string, port uint32) bool {
	src, dst := views[from], views[to]
	svc := "s-" + dst.w.Name
	host := mesh.ServiceHost(svc, dst.w.Namespace, mesh.DefaultClusterDomain)
	authority := svc + "." + dst.w.Namespace + ":" + fmt.Sprint(port)
	if !src.vhosts[fmt.Sprintf("%s:%d", host, port)] || !src.eps[mesh.OutboundClusterName(port, host)+"|"+dst.w.Address] {
		return false
	}
	if !src.outbound.Evaluate(&authz.Request{Authority: authority, Method: "GET", Path: "/"}).Allowed {
		return false
	}
	eng := dst.inbound[port]
	if eng == nil {
		return false
	}
	return eng.Evaluate(&authz.Request{
		Principal:       src.w.Identity(mesh.DefaultTrustDomain),
		Source:          netip.MustParseAddr(src.w.Address),
		DestinationPort: port,
		Method:          "GET",
		Authority:       authority,
		Path:            "/",
	}).Allowed
}

func TestNetworkPolicyTruthTables(t *testing.T) {
	all := func(string, string, uint32) bool { return true }
	ns := func(p string) string { return strings.SplitN(p, "/", 2)[0] }
	tests := []struct {
		name, source, policies string
		// allowed says whether from -> to:port ("x/a" style) connects.
		allowed func(from, to string, port uint32) bool
	}{
		{"no policies: everything connects", "k8s e2e: baseline probe", "", all},
		{"default-deny-ingress", "k8s e2e: should support a 'default-deny-ingress' policy", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
`, func(from, to string, _ uint32) bool { return ns(to) != "x" }},
		{"default-deny-all", "k8s e2e: should support a 'default-deny-all' policy", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
`, func(from, to string, _ uint32) bool { return ns(to) != "x" && ns(from) != "x" }},
		{"podSelector in the server namespace", "k8s e2e: should enforce policy to allow traffic from pods within server namespace based on PodSelector", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "x/b" }},
		{"namespaceSelector only", "k8s e2e: should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || ns(from) == "y" }},
		{"podSelector matchExpressions", "k8s e2e: should enforce policy based on PodSelector with MatchExpressions", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: expr, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b]}]}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "x/b" }},
		{"namespaceSelector matchExpressions NotIn", "k8s e2e: should enforce policy based on NamespaceSelector with MatchExpressions", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: expr, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x, "y"]}]}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || ns(from) == "z" }},
		{"two peers are ORed", "k8s e2e: should enforce policy based on PodSelector or NamespaceSelector", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}, {namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "x/b" || ns(from) == "y" }},
		{"one peer with both selectors is ANDed", "k8s e2e: should enforce policy based on PodSelector and NamespaceSelector", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}, namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "y/b" }},
		{"AND over a shared service account needs the source address", "cyclonus peers: pod+namespace selector (Weft: identity per service account)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: z-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}, namespaceSelector: {matchLabels: {ns: z}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "z/a" }},
		{"ports", "k8s e2e: should enforce policy based on Ports", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p81, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: 81}]}]
`, func(from, to string, port uint32) bool { return to != "x/a" || port == 81 }},
		{"stacked policies are a union", "k8s e2e: should enforce multiple, stacked policies with overlapping podSelectors", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: 80}], from: [{namespaceSelector: {matchLabels: {ns: "y"}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p81, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 81}]}]
`, func(from, to string, port uint32) bool {
			switch {
			case ns(to) != "x":
				return true
			case port == 81:
				return true
			}
			return to == "x/a" && ns(from) == "y"
		}},
		{"allow-all ingress", "k8s e2e: should support allow-all policy", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec: {podSelector: {}, ingress: [{}]}
`, all},
		{"named port", "k8s e2e: should allow ingress access on one named port", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: serve-81-tcp}]}]
`, func(from, to string, port uint32) bool { return to != "x/a" || port == 81 }},
		{"protocol TCP without port", "k8s e2e: should enforce ingress policy allowing any port traffic to a server on a specific protocol", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: tcp, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: TCP}]}]
`, all},
		{"UDP only allows no TCP", "cyclonus port-protocol: UDP port on a TCP server", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: UDP, port: 80}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" }},
		{"endPort range", "k8s e2e: should support allow-all ... endPort (netpol: should enforce policy to allow ingress traffic from pods in all namespaces with port range)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{port: 81, endPort: 90}]}]
`, func(from, to string, port uint32) bool { return to != "x/a" || port == 81 }},
		{"default namespace label", "k8s e2e: should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ns-label, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || ns(from) == "z" }},
		{"ipBlock with except", "cyclonus peers: ipBlock with except", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cidr, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 10.0.2.0/24, except: [10.0.2.2/32]}}]}]
`, func(from, to string, _ uint32) bool { return to != "x/a" || from == "y/a" || from == "y/c" }},
		{"policyTypes default adds Egress when egress rules exist", "cyclonus policy-types: egress rules without policyTypes", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`, func(from, to string, _ uint32) bool {
			if to == "x/a" { // ingress-isolated with no ingress rules
				return false
			}
			return from != "x/a" || ns(to) == "y"
		}},
		{"egress by pod and namespace selector", "k8s e2e: should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {pod: b}}, namespaceSelector: {matchLabels: {ns: "y"}}}]}]
`, func(from, to string, _ uint32) bool { return from != "x/a" || to == "y/b" }},
		{"egress port", "k8s e2e: should enforce egress policy ... on specific port (cyclonus port-protocol)", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 80}]}]
`, func(from, to string, port uint32) bool { return from != "x/a" || port == 80 }},
		{"egress named port", "cyclonus port-protocol: named port on egress", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: serve-81-tcp}]}]
`, func(from, to string, port uint32) bool { return from != "x/a" || port == 81 }},
		{"egress ipBlock", "cyclonus peers: egress ipBlock", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: eg, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.3.0/24}}]}]
`, func(from, to string, _ uint32) bool { return from != "x/a" || ns(to) == "z" }},
		{"deny-all egress, allow-all ingress", "cyclonus conflict: deny all egress and allow all ingress", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-eg, namespace: "y"}
spec: {podSelector: {}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-in, namespace: "y"}
spec: {podSelector: {}, ingress: [{}]}
`, func(from, to string, _ uint32) bool { return ns(from) != "y" }},
		{"a policy isolates only the pods it selects", "k8s e2e: should not affect pods the policy does not select", `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-c, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: c}}
  policyTypes: [Ingress]
`, func(from, to string, _ uint32) bool { return to != "y/c" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := file.Parse("truth.yaml", []byte(truthMesh(tc.policies)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			views := map[string]proxyView{}
			for _, w := range st.Workloads {
				views[w.Namespace+"/"+w.Name] = viewOf(t, st, w)
			}
			var wrong []string
			for from := range views {
				for to := range views {
					for _, port := range []uint32{80, 81} {
						got, want := connect(views, from, to, port), tc.allowed(from, to, port)
						if got != want {
							wrong = append(wrong, fmt.Sprintf("%s -> %s:%d = %v, want %v", from, to, port, got, want))
						}
					}
				}
			}
			if len(wrong) > 0 {
				t.Errorf("%s (%s): %d of %d probes wrong:\n%s", tc.name, tc.source, len(wrong), 2*len(views)*len(views), strings.Join(wrong, "\n"))
			}
		})
	}
}
