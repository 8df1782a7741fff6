package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// binDir holds the binaries (set once by TestMain, read-only after).
var binDir string

var binaries = map[string]string{
	"github.com/weftmesh/weft/control-plane/cmd/weft-control-plane": mesh.BinaryControlPlane,
	"github.com/weftmesh/weft/sidecar/cmd/weft-sidecar":             mesh.BinarySidecar,
	"github.com/weftmesh/weft/examples/shop/cmd/shop":               "shop",
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // the tests skip (or fail with WEFT_REQUIRE_NETNS)
	}
	if dir := os.Getenv("WEFT_BIN_DIR"); dir != "" {
		binDir = dir
	} else {
		dir, err := os.MkdirTemp("", "weft-netns-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = os.RemoveAll(dir) }()
		start := time.Now()
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		for pkg := range binaries {
			args = append(args, pkg)
		}
		cmd := exec.Command("go", args...) //nolint:noctx // bounded by the test binary's own timeout.
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "netns: go build: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "netns: built binaries into %s in %s\n", dir, time.Since(start).Round(time.Millisecond))
		binDir = dir
	}
	// The sidecar runs as mesh.ProxyUID: it must reach its binary.
	if err := os.Chmod(binDir, 0o755); err != nil { //nolint:gosec // G302: binaries for another uid.
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
