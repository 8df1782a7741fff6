package netns

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/e2ebin"
)

// binDir holds the binaries; sidecarBin is the sidecar's copy that the
// proxy uid can execute (both set once by TestMain, read-only after).
var binDir, sidecarBin string

func copyExecutable(from, to string) error {
	b, err := os.ReadFile(from) //nolint:gosec // G304: our own build output.
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755) //nolint:gosec // G306: an executable for another uid.
}

var binaries = map[string]string{
	"github.com/weftmesh/weft/control-plane/cmd/weft-control-plane": mesh.BinaryControlPlane,
	"github.com/weftmesh/weft/sidecar/cmd/weft-sidecar":             mesh.BinarySidecar,
	"github.com/weftmesh/weft/examples/shop/cmd/shop":               "shop",
}

// envEcho makes the test binary a raw TCP echo app: "<addr>,<name>".
const envEcho = "WEFT_NETNS_ECHO"

func TestMain(m *testing.M) {
	if v := os.Getenv(envResolver); v != "" {
		// The test's upstream DNS resolver (dns_test.go); lives until killed.
		if err := serveResolver(v, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if v := os.Getenv(envEcho); v != "" {
		addr, name, _ := strings.Cut(v, ",")
		ln, err := net.Listen("tcp", addr) //nolint:noctx // the helper process lives until killed.
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		serveEcho(ln, name)
		os.Exit(0)
	}
	os.Exit(run(m))
}

// serveEcho greets each connection ("hello from <name>"), then answers
// every line with "echo:<line>".
func serveEcho(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			if _, err := io.WriteString(c, "hello from "+name+"\n"); err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, "echo:"+line); err != nil {
					return
				}
			}
		}()
	}
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // the tests skip (or fail with WEFT_REQUIRE_NETNS)
	}
	dir, cleanup, err := e2ebin.Prepare("netns", binaries)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	binDir = dir
	// The sidecar runs as mesh.ProxyUID: copy it where that uid can reach
	// it (WEFT_BIN_DIR may sit under a 0700 home directory).
	sdir, err := os.MkdirTemp("", "weft-netns-sidecar-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(sdir) }()
	sidecarBin = filepath.Join(sdir, mesh.BinarySidecar)
	if err := copyExecutable(filepath.Join(binDir, mesh.BinarySidecar), sidecarBin); err != nil {
		fmt.Fprintln(os.Stderr, "netns:", err)
		return 1
	}
	if err := os.Chmod(sdir, 0o755); err != nil { //nolint:gosec // G302: read by the proxy uid.
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
