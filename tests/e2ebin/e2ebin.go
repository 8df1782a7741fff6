package e2ebin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Prepare returns the directory holding binaries (package path -> file
// name) and a cleanup function. It uses WEFT_BIN_DIR when set, otherwise
// builds the packages into a temporary directory that cleanup removes. It
// fails when any expected binary is missing. suite prefixes its messages.
func Prepare(suite string, binaries map[string]string) (dir string, cleanup func(), err error) {
	cleanup = func() {}
	if env := os.Getenv("WEFT_BIN_DIR"); env != "" {
		if dir, err = filepath.Abs(env); err != nil {
			return "", cleanup, fmt.Errorf("%s: WEFT_BIN_DIR: %w", suite, err)
		}
	} else {
		if dir, err = os.MkdirTemp("", "weft-"+strings.ReplaceAll(suite, "/", "-")+"-bin-"); err != nil {
			return "", cleanup, fmt.Errorf("%s: %w", suite, err)
		}
		tmp := dir
		cleanup = func() { _ = os.RemoveAll(tmp) }
		start := time.Now()
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		for pkg := range binaries {
			args = append(args, pkg)
		}
		cmd := exec.Command("go", args...) //nolint:noctx // bounded by the test binary's own timeout.
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("%s: go build: %w", suite, err)
		}
		fmt.Fprintf(os.Stderr, "%s: built binaries into %s in %s\n", suite, dir, time.Since(start).Round(time.Millisecond))
	}
	for _, name := range binaries {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("%s: %w (WEFT_BIN_DIR=%q)", suite, err, os.Getenv("WEFT_BIN_DIR"))
		}
	}
	return dir, cleanup, nil
}
