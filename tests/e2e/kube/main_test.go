package kube

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"
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
	if dir := os.Getenv("WEFT_BIN_DIR"); dir != "" {
		binDir = dir
	} else {
		dir, err := os.MkdirTemp("", "weft-e2e-kube-bin-")
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
			fmt.Fprintf(os.Stderr, "e2e/kube: go build: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e/kube: built binaries into %s in %s\n", dir, time.Since(start).Round(time.Millisecond))
		binDir = dir
	}
	for _, name := range binaries {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e/kube: %v (WEFT_BIN_DIR=%q)\n", err, os.Getenv("WEFT_BIN_DIR"))
			return 1
		}
	}
	return m.Run()
}
