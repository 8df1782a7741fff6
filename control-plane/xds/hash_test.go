package xds

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/translate"
)

// TestStandInMarshalsLikeTheAssignment: the stand-in of every assignment
// of every golden mesh has the assignment's name and marshals (as the
// snapshot cache does) to exactly the assignment's bytes, and the hash
// cache hands it to snapshots.
func TestStandInMarshalsLikeTheAssignment(t *testing.T) {
	inputs, err := filepath.Glob("../translate/testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("golden meshes: %v (%d)", err, len(inputs))
	}
	n := 0
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		st, err := file.Parse(in, data)
		if err != nil {
			t.Fatal(err)
		}
		hashes := newHashCache()
		for _, w := range st.Workloads {
			res, err := translate.Build(st, w, meshconfig.Default())
			if err != nil {
				t.Fatal(err)
			}
			for _, cla := range res.Endpoints {
				want, err := cache.MarshalResource(cla)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := hashes.item(cla); err != nil {
					t.Fatal(err)
				}
				si := hashes.snapshotItem(cla)
				if si == cla {
					t.Fatalf("%s: %s: no stand-in", w.NodeID(), cla.GetClusterName())
				}
				if got := cache.GetResourceName(si); got != cla.GetClusterName() {
					t.Errorf("%s: stand-in named %q", cla.GetClusterName(), got)
				}
				got, err := cache.MarshalResource(si)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: stand-in marshals to %d bytes, the assignment to %d (or they differ)", cla.GetClusterName(), len(got), len(want))
				}
				back := &endpoint.ClusterLoadAssignment{}
				if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, cla) {
					t.Errorf("%s: stand-in decodes to a different assignment (%v)", cla.GetClusterName(), err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no assignment in the golden meshes")
	}
}
