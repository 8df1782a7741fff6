package local

import (
	"fmt"
	"os"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/e2ebin"
)

// binDir holds the binaries every test runs; set by TestMain.
var binDir string // set once by TestMain, read-only after

// binaries are what the suite builds: package -> file name.
var binaries = map[string]string{
	"github.com/weftmesh/weft/control-plane/cmd/weft-control-plane": mesh.BinaryControlPlane,
	"github.com/weftmesh/weft/sidecar/cmd/weft-sidecar":             mesh.BinarySidecar,
	"github.com/weftmesh/weft/examples/shop/cmd/shop":               "shop",
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, cleanup, err := e2ebin.Prepare("e2e", binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	return m.Run()
}
