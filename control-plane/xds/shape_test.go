package xds

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/translate"
)

// replicas is a mesh where shapes matter: replicas of one app (same
// shape), one without an app label (its own shape), a NetworkPolicy that
// selects by label and allows sources by ipBlock, and a namespace with a
// different mTLS mode.
func replicas() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: b, annotations: {weft.dev/mtls-mode: PERMISSIVE}}\n---\n")
	n := 0
	for _, ns := range []string{"a", "b"} {
		for _, app := range []string{"web", "api"} {
			n++
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  selector: {app: %s}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n", app, ns, app)
			for i := range 3 {
				fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: %s-%d, namespace: %s, labels: {app: %s}}\nspec: {address: 10.5.%d.%d, serviceAccount: %s, ports: [{name: http, port: 8080}]}\n---\n",
					app, i, ns, app, n, i+1, app)
			}
		}
	}
	b.WriteString("apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: lone, namespace: a}\nspec: {address: 10.9.9.9, serviceAccount: lone, ports: [{name: http, port: 8080}]}\n---\n")
	b.WriteString("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: a}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: api}}\n    - ipBlock: {cidr: 10.5.3.0/24}\n  egress:\n  - to:\n    - podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress, Egress]\n")
	return b.String()
}

// TestShapeMatchesBuild: the shared translation of every workload equals
// translate.Build for it, for every golden mesh of translate and for the
// replicas mesh, with and without tracing.
func TestShapeMatchesBuild(t *testing.T) {
	meshes := map[string][]byte{"replicas": []byte(replicas())}
	inputs, err := filepath.Glob("../translate/testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("golden meshes: %v (%d)", err, len(inputs))
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		meshes[filepath.Base(in)] = data
	}
	traced := meshconfig.Default()
	traced.Tracing.Endpoint = "127.0.0.1:4318"
	for name, data := range meshes {
		st, err := file.Parse(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, mc := range []meshconfig.Config{meshconfig.Default(), traced} {
			var c shapeCache
			for _, w := range st.Workloads {
				t.Run(name+"/"+w.NodeID(), func(t *testing.T) {
					want, werr := translate.Build(st, w, mc)
					got, gerr := c.build(&st, w, mc)
					if (werr != nil) != (gerr != nil) {
						t.Fatalf("errors differ: Build %v, shared %v", werr, gerr)
					}
					if werr != nil {
						return
					}
					if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
						t.Errorf("shared translation differs (-Build +shared):\n%s", diff)
					}
				})
			}
		}
	}
	// The replicas mesh must actually share: 8 app shapes for 12 replicas.
	st, _ := file.Parse("replicas", meshes["replicas"])
	var c shapeCache
	for _, w := range st.Workloads {
		if _, err := c.build(&st, w, meshconfig.Default()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.shapes); n != 4 {
		t.Errorf("replicas mesh: %d shapes, want 4 (web and api in a and b)", n)
	}
}

// TestPushKeepsUnaffectedShapes: after an endpoint change that no proxy of
// a shape reaches, its replicas keep their shape translation (the same
// *shaped, so they skip their sync) push after push, whichever replica the
// push looks at first; the proxies the change reaches get a new one.
func TestPushKeepsUnaffectedShapes(t *testing.T) {
	mesh := replicas()
	s := New(meshconfig.Default())
	s.Update(parse(t, mesh))
	s.Push()
	ids := []string{"api-0.b", "api-1.b", "api-2.b", "web-0.a", "web-1.a"}
	for _, id := range ids {
		s.nodeConnected(context.Background(), id)
	}
	shapeOf := func(id string) *shaped {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.nodes[id].shape
	}
	before := map[string]*shaped{}
	for _, id := range ids {
		if before[id] = shapeOf(id); before[id] == nil {
			t.Fatalf("%s has no shape", id)
		}
	}
	// web in namespace a may reach only api of a (its egress policy);
	// api in b reaches every service: moving web-2.a changes api's
	// assignments, not web's.
	for i := range 10 {
		// web-2.a (not connected) moves.
		next := strings.Replace(mesh, "address: 10.5.1.3,", fmt.Sprintf("address: 10.6.0.%d,", i+1), 1)
		if next == mesh {
			t.Fatal("web-2.a not found in the mesh")
		}
		s.Update(parse(t, next))
		s.Push()
		for _, id := range []string{"web-0.a", "web-1.a"} {
			if got := shapeOf(id); got != before[id] {
				t.Fatalf("push %d: %s got a new shape translation though the change does not reach it", i, id)
			}
		}
		for _, id := range []string{"api-0.b", "api-1.b", "api-2.b"} {
			if got := shapeOf(id); got == before[id] {
				t.Fatalf("push %d: %s kept its shape translation though the change reaches it", i, id)
			}
			before[id] = shapeOf(id)
		}
	}
}

// TestShapeVersionMapsOnlyForDelta: the delta version maps of a shape are
// made only once a node with a delta stream uses the shape (a SotW stream
// never reads them).
func TestShapeVersionMapsOnlyForDelta(t *testing.T) {
	s := New(meshconfig.Default())
	s.Update(parse(t, replicas()))
	s.Push()
	s.nodeConnected(context.Background(), "api-0.b") // no stream: not a delta node
	s.mu.Lock()
	sh := s.nodes["api-0.b"].shape
	for i, vm := range sh.vmaps {
		if vm != nil {
			t.Errorf("type %s: version map made for a SotW node", typeURLs[i])
		}
	}
	s.mu.Unlock()
	// A delta stream names a replica of the same shape.
	k := streamKey{delta: true, id: 1}
	if err := s.status.open(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	s.status.request(k, &core.Node{Id: "api-1.b"}, resource.ClusterType, "", "", "", false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.nodes["api-1.b"].shape; got != sh {
		t.Fatalf("api-1.b has another shape translation")
	}
	if sh.vmaps[typeIndex(resource.EndpointType)] == nil {
		t.Error("no EDS version map for a delta node's shape")
	}
}

// TestRewriteSharesAllButTheAddress: a replica's copies of its shape's
// inbound clusters and listeners (kept for as long as it is connected)
// alias every field of the shape's objects but the ones holding the
// address, which are its own; the shape's objects are left as they were.
func TestRewriteSharesAllButTheAddress(t *testing.T) {
	const from, to = "10.5.1.1", "10.5.1.2"
	inbound := &cluster.Cluster{
		Name:                 "inbound|8080||",
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "inbound|8080||", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: from, PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080}}}},
			}}}},
		}}},
	}
	outbound := &cluster.Cluster{Name: "outbound|80||api.a.svc.cluster.local", ConnectTimeout: durationpb.New(time.Second)}
	lis := &listener.Listener{
		Name:         "inbound",
		Address:      &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: from, PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15006}}}},
		FilterChains: []*listener.FilterChain{{Name: "chain"}},
	}
	res := &translate.Resources{Clusters: []*cluster.Cluster{inbound, outbound}, Listeners: []*listener.Listener{lis}}
	before := proto.Clone(inbound)

	out := rewrite(res, from, to)

	got := out.Clusters[0]
	if a := got.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress(); a != to {
		t.Errorf("replica's inbound endpoint address %q, want %q", a, to)
	}
	if !proto.Equal(inbound, before) {
		t.Error("rewrite modified the shape's inbound cluster")
	}
	if got.GetConnectTimeout() != inbound.GetConnectTimeout() {
		t.Error("replica's inbound cluster has its own copy of connect_timeout; want the shape's (only the load assignment holds the address)")
	}
	if got.GetLoadAssignment() == inbound.GetLoadAssignment() {
		t.Error("replica's inbound cluster shares the shape's load assignment")
	}
	if out.Clusters[1] != outbound {
		t.Error("an outbound cluster was copied; want the shape's")
	}
	l := out.Listeners[0]
	if a := l.GetAddress().GetSocketAddress().GetAddress(); a != to || lis.GetAddress().GetSocketAddress().GetAddress() != from {
		t.Errorf("listener addresses: replica %q, shape %q; want %q, %q", a, lis.GetAddress().GetSocketAddress().GetAddress(), to, from)
	}
	if &l.FilterChains[0] != &lis.FilterChains[0] {
		t.Error("replica's listener has its own filter chains; want the shape's")
	}
}
