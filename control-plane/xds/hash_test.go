package xds

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/translate"
)

// TestStandInMarshalsLikeTheResource: the stand-in of every assignment
// and cluster of every golden mesh has the resource's name and marshals
// (as the snapshot cache does) to exactly the resource's bytes, and the
// hash cache hands it to snapshots.
func TestStandInMarshalsLikeTheResource(t *testing.T) {
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
			var all []types.Resource
			for _, cla := range res.Endpoints {
				all = append(all, cla)
			}
			for _, c := range res.Clusters {
				all = append(all, c)
			}
			for _, cla := range all {
				want, err := cache.MarshalResource(cla)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := hashes.item(cla); err != nil {
					t.Fatal(err)
				}
				si := hashes.snapshotItem(cla)
				if si == cla {
					t.Fatalf("%s: %s: no stand-in", w.NodeID(), cache.GetResourceName(cla))
				}
				name := cache.GetResourceName(cla)
				if got := cache.GetResourceName(si); got != name {
					t.Errorf("%s: stand-in named %q", name, got)
				}
				got, err := cache.MarshalResource(si)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: stand-in marshals to %d bytes, the resource to %d (or they differ)", name, len(got), len(want))
				}
				back := cla.ProtoReflect().New().Interface()
				if err := proto.Unmarshal(got, back); err != nil || !proto.Equal(back, cla) {
					t.Errorf("%s: stand-in decodes to a different resource (%v)", name, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no assignment or cluster in the golden meshes")
	}
}
