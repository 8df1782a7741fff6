package translate

import (
	"os"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

func TestEgressOutboundPolicy(t *testing.T) {
	data, err := os.ReadFile("testdata/egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.Parse("egress.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := st.Workload("order-1.shop")
	for _, tc := range []struct {
		policy meshconfig.OutboundPolicy
		want   bool
	}{{meshconfig.OutboundRegistryOnly, false}, {meshconfig.OutboundAllowAny, true}} {
		t.Run(string(tc.policy), func(t *testing.T) {
			mc := meshconfig.Default()
			mc.OutboundPolicy = tc.policy
			res, err := Build(st, w, mc)
			if err != nil {
				t.Fatal(err)
			}
			var pass *cluster.Cluster
			for _, c := range res.Clusters {
				if c.GetName() == mesh.ClusterPassthrough {
					pass = c
				}
			}
			hasVH := false
			for _, vh := range res.Routes[0].GetVirtualHosts() {
				if vh.GetName() == mesh.VirtualHostAllowAny {
					hasVH = true
					if len(vh.GetDomains()) != 1 || vh.GetDomains()[0] != "*" || vh.GetRoutes()[0].GetRoute().GetCluster() != mesh.ClusterPassthrough {
						t.Errorf("allow_any virtual host: %v", vh)
					}
				}
			}
			if (pass != nil) != tc.want || hasVH != tc.want {
				t.Fatalf("passthrough cluster %v, allow_any vhost %v; want %v", pass != nil, hasVH, tc.want)
			}
			if pass != nil && (pass.GetType() != cluster.Cluster_ORIGINAL_DST || pass.GetLbPolicy() != cluster.Cluster_CLUSTER_PROVIDED) {
				t.Errorf("passthrough cluster: type %v lb %v", pass.GetType(), pass.GetLbPolicy())
			}
		})
	}
}

func TestEgressTable(t *testing.T) {
	data, err := os.ReadFile("testdata/egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.Parse("egress.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Table(st, "cluster.local", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]egress.Rule{}
	for _, d := range tbl.Destinations {
		got[d.Name+":"+itoa(int(d.Port))] = d.Rules
	}
	want := map[string][]egress.Rule{
		"shop/cdn:443": {{Principals: []string{"spiffe://cluster.local/ns/shop/sa/*"}}},
		"shop/db:5432": nil,
		"shop/payments:80": {{
			Principals: []string{"spiffe://cluster.local/ns/shop/sa/order"},
			Methods:    []string{"GET"}, Paths: []string{"/v1/*"},
		}},
		"shop/payments:443": {{Principals: []string{"spiffe://cluster.local/ns/shop/sa/order", "spiffe://cluster.local/ns/billing/sa/*"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if _, err := egress.Compile(tbl); err != nil {
		t.Errorf("table does not compile: %v", err)
	}
}

// A mesh name of an ExternalName Service that an ExternalService already
// claims stays the ExternalService's: the gateway would refuse a table
// with two claims of one host and port.
func TestEgressTableExternalNameAliases(t *testing.T) {
	const doc = `apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec: {type: ExternalName, externalName: legacy.example, ports: [{name: http, port: 80}]}
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: squatter, namespace: other}
spec: {hosts: [legacy.shop], ports: [{number: 80, protocol: HTTP}]}
`
	st, err := file.Parse("m.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := Table(st, "cluster.local", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range tbl.Destinations {
		got[d.Name] = d.Hosts
	}
	want := map[string][]string{
		"other/squatter":      {"legacy.shop"},
		"service/shop/legacy": {"legacy.example", "legacy.shop.svc", "legacy.shop.svc.cluster.local"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hosts by destination (-want +got):\n%s", diff)
	}
	if _, err := egress.Compile(tbl); err != nil {
		t.Errorf("the gateway would refuse the table: %v", err)
	}
}
