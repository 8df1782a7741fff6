package translate

import (
	"os"
	"path/filepath"
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
