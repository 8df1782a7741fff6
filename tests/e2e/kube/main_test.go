package kube

import (
	"fmt"
	"os"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/e2ebin"
)

// binDir holds the Weft binaries the tests run; set once by TestMain.
var binDir string // read-only after TestMain

// binaries are what the suite needs: package -> file name.
var binaries = map[string]string{
	"github.com/weftmesh/weft/injector/cmd/weft-injector":           mesh.BinaryInjector,
	"github.com/weftmesh/weft/control-plane/cmd/weft-control-plane": mesh.BinaryControlPlane,
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, cleanup, err := e2ebin.Prepare("e2e/kube", binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	return m.Run()
}
