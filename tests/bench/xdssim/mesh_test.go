package xdssim

import (
	"bytes"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/translate"
)

func TestGeneratedMeshParsesAndTranslates(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec MeshSpec
		vh   int // outbound virtual hosts of one proxy
	}{
		{"whole mesh", MeshSpec{Services: 20, Namespaces: 4, EndpointsPerService: 3}, 20},
		{"allowlist of 2 namespaces", MeshSpec{Services: 20, Namespaces: 4, EndpointsPerService: 3, Reach: 2}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.spec.Write(&b, map[int]int{3: 1}); err != nil {
				t.Fatal(err)
			}
			st, err := file.Parse("mesh.yaml", b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if n := len(st.Workloads); n != tc.spec.Endpoints() {
				t.Fatalf("%d workloads, want %d", n, tc.spec.Endpoints())
			}
			w, ok := st.Workload(tc.spec.Workload(0).NodeID())
			if !ok {
				t.Fatal("workload 0 not found")
			}
			res, err := translate.Build(st, w, meshconfig.Default())
			if err != nil {
				t.Fatal(err)
			}
			var vh int
			for _, rc := range res.Routes {
				if rc.GetName() == "outbound" {
					vh = len(rc.GetVirtualHosts())
				}
			}
			if vh != tc.vh {
				t.Errorf("outbound virtual hosts = %d, want %d", vh, tc.vh)
			}
		})
	}
}

// TestTranslateCost logs what parsing the full-scale registry and
// translating one proxy cost (XDSSIM_COST=1 go test -run Cost -v).
func TestTranslateCost(t *testing.T) {
	if os.Getenv("XDSSIM_COST") == "" {
		t.Skip("set XDSSIM_COST=1: parses a 10,000-entry registry (about 15 s)")
	}
	for _, spec := range []MeshSpec{
		{Services: 1000, Namespaces: 50, EndpointsPerService: 10},
		{Services: 1000, Namespaces: 50, EndpointsPerService: 10, Reach: 2},
	} {
		var b bytes.Buffer
		_ = spec.Write(&b, nil)
		t0 := time.Now()
		st, err := file.Parse("mesh.yaml", b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		parse := time.Since(t0)
		w, _ := st.Workload(spec.Workload(0).NodeID())
		t0 = time.Now()
		const n = 5
		var res *translate.Resources
		for range n {
			res, err = translate.Build(st, w, meshconfig.Default())
			if err != nil {
				t.Fatal(err)
			}
		}
		per := time.Since(t0) / n
		size := 0
		for _, x := range res.Clusters {
			size += proto.Size(x)
		}
		for _, x := range res.Endpoints {
			size += proto.Size(x)
		}
		for _, x := range res.Routes {
			size += proto.Size(x)
		}
		for _, x := range res.Listeners {
			size += proto.Size(x)
		}
		t.Logf("reach %d: file %d KB, parse %v, translate %v/proxy, %d clusters, %d KB/proxy", spec.Reach, b.Len()/1024, parse, per, len(res.Clusters), size/1024)
	}
}
