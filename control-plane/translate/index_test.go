package translate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/weftmesh/weft/api/meshconfig"
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
