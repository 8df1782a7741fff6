package kubenet

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/e2ebin"
)

// binDir holds the Weft binaries; imageDir holds the copies the pods run
// (readable by the proxy uid). Both set once by TestMain, read-only after.
var binDir, imageDir string

var binaries = map[string]string{
	"github.com/weftmesh/weft/control-plane/cmd/weft-control-plane": mesh.BinaryControlPlane,
	"github.com/weftmesh/weft/injector/cmd/weft-injector":           mesh.BinaryInjector,
	"github.com/weftmesh/weft/sidecar/cmd/weft-sidecar":             mesh.BinarySidecar,
	"github.com/weftmesh/weft/examples/shop/cmd/shop":               "shop",
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // the test skips (or fails with WEFT_REQUIRE_NETNS)
	}
	dir, cleanup, err := e2ebin.Prepare("e2e/kubenet", binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	// The sidecar runs as mesh.ProxyUID: the pods' binaries are copies in
	// a directory that uid can reach (WEFT_BIN_DIR may be under a 0700 home).
	idir, err := os.MkdirTemp("", "weft-kubenet-images-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(idir) }()
	if err := os.Chmod(idir, 0o755); err != nil { //nolint:gosec // G302: read by the proxy uid.
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, name := range []string{mesh.BinarySidecar, "shop"} {
		b, err := os.ReadFile(filepath.Join(dir, name)) //nolint:gosec // G304: our own build output.
		if err == nil {
			err = os.WriteFile(filepath.Join(idir, name), b, 0o755) //nolint:gosec // G306: an executable for another uid.
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e/kubenet:", err)
			return 1
		}
	}
	imageDir = idir
	return m.Run()
}
