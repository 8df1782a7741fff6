package translate

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// TestIndexMatchesBuild translates every workload of every golden mesh
// through one shared Index (so later workloads reuse what earlier ones
// memoized), in file order and in reverse, and holds each result equal to
// Build's for that workload alone.
func TestIndexMatchesBuild(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			st, err := file.Parse(in, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, reverse := range []bool{false, true} {
				idx := NewIndex(st, meshconfig.Default())
				for i := range st.Workloads {
					w := st.Workloads[i]
					if reverse {
						w = st.Workloads[len(st.Workloads)-1-i]
					}
					want, werr := Build(st, w, meshconfig.Default())
					got, gerr := idx.Build(w)
					if (werr == nil) != (gerr == nil) {
						t.Fatalf("%s: Build error %v, Index.Build error %v", w.NodeID(), werr, gerr)
					}
					if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
						t.Errorf("%s (reverse %v): Index.Build differs from Build (-Build +Index):\n%s", w.NodeID(), reverse, diff)
					}
				}
			}
		})
	}
}

// TestIndexNextMatchesBuild: an Index made with Next from the previous
// state's (after that one translated every workload) translates the new
// state exactly as Build does: for the same state again (everything
// reused), for the next golden mesh, and for the mesh with every
// WorkloadEntry address changed (endpoints change, routes do not).
func TestIndexNextMatchesBuild(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	var states []model.State
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		st, err := file.Parse(in, data)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		states = append(states, st)
		moved := strings.ReplaceAll(string(data), "address: 127.0.0.", "address: 127.0.9.")
		if st2, err := file.Parse(in, []byte(moved)); err == nil && moved != string(data) {
			states = append(states, st2)
		}
	}
	build := func(idx *Index, st model.State) {
		t.Helper()
		for _, w := range st.Workloads {
			want, werr := Build(st, w, meshconfig.Default())
			got, gerr := idx.Build(w)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%s: Build error %v, Index.Build error %v", w.NodeID(), werr, gerr)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("%s: Index.Build after Next differs from Build (-Build +Index):\n%s", w.NodeID(), diff)
			}
		}
	}
	idx := NewIndex(states[0], meshconfig.Default())
	build(idx, states[0])
	for i := range states {
		for _, st := range []model.State{states[i], states[(i+1)%len(states)]} {
			idx = idx.Next(st)
			build(idx, st)
		}
	}
}

// addressMesh has what makes a translation depend on other workloads'
// addresses: an ingress peer selecting one of two workloads of a service
// account (its source address is named) and an egress ipBlock peer.
const addressMesh = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{name: pg, port: 5432, targetPort: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop, labels: {app: api, tier: canary}}
spec: {address: 10.0.0.1, serviceAccount: api, ports: [{name: http, port: 8080}]}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: api-2, namespace: shop, labels: {app: api}}
spec: {address: 10.0.0.2, serviceAccount: api, ports: [{name: http, port: 8080}]}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop, labels: {app: db}}
spec: {address: 10.0.0.3, serviceAccount: db, ports: [{name: pg, port: 5432}]}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {address: 10.0.0.4, serviceAccount: web, ports: [{name: http, port: 8080}]}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {address: 10.0.0.5, serviceAccount: web, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-canary, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {tier: canary}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: 53, protocol: UDP}]
  - to:
    - ipBlock: {cidr: 10.0.0.0/30}
  - to:
    - podSelector: {matchLabels: {app: db}}
`

var addressRE = regexp.MustCompile(`address: (\d+\.\d+\.\d+\.\d+)`)

// TestIndexNextIncrementalMatchesBuild moves one address at a time (each
// step on top of the previous ones) in every golden mesh and in
// addressMesh, and holds every workload's translation through Next equal
// to Build's. It also requires that some translations were reused whole
// (the same *Resources: incremental.go) and that none of the
// address-dependent ones of addressMesh was.
func TestIndexNextIncrementalMatchesBuild(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	meshes := map[string]string{"address": addressMesh}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		meshes[strings.TrimSuffix(filepath.Base(in), ".yaml")] = string(data)
	}
	reused := 0
	for name, data := range meshes {
		t.Run(name, func(t *testing.T) {
			st, err := file.Parse(name+".yaml", []byte(data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			idx := NewIndex(st, meshconfig.Default())
			prev := map[string]*Resources{}
			for _, w := range st.Workloads {
				if prev[w.NodeID()], err = idx.Build(w); err != nil {
					t.Fatalf("%s: %v", w.NodeID(), err)
				}
			}
			locs := addressRE.FindAllStringSubmatchIndex(data, -1)
			for k := range locs {
				// Move the k-th address (byte offsets of later matches
				// shift by the same amount each step: same length).
				loc := addressRE.FindAllStringSubmatchIndex(data, -1)[k]
				moved := fmt.Sprintf("10.%d.%d.%d", 200+k/250, k%250, 7)
				moved += strings.Repeat(" ", max(0, loc[3]-loc[2]-len(moved)))
				data = data[:loc[2]] + moved + data[loc[3]:]
				st2, err := file.Parse(name+".yaml", []byte(data))
				if err != nil {
					t.Fatalf("Parse after moving address %d: %v", k, err)
				}
				idx = idx.Next(st2)
				for _, w := range st2.Workloads {
					want, werr := Build(st2, w, meshconfig.Default())
					got, gerr := idx.Build(w)
					if (werr == nil) != (gerr == nil) {
						t.Fatalf("%s: Build error %v, Index.Build error %v", w.NodeID(), werr, gerr)
					}
					if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
						t.Fatalf("move %d, %s: Index.Build after Next differs from Build (-Build +Index):\n%s", k, w.NodeID(), diff)
					}
					if got != nil && got == prev[w.NodeID()] {
						reused++
						if name == "address" && (w.Name == "db-1" || strings.HasPrefix(w.Name, "web-")) {
							t.Errorf("move %d: %s depends on addresses but its translation was reused", k, w.NodeID())
						}
					}
					prev[w.NodeID()] = got
				}
			}
		})
	}
	if reused == 0 {
		t.Error("no translation was reused after an address-only change")
	}
}
