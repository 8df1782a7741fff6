package main

import (
	"os/exec"
	"strings"
	"testing"
)

// notLinked are modules the sidecar binary must not link (issue 11: its
// executable pages are most of its idle memory). grpc-go alone was about
// 5.5 MB of them: the sidecar speaks gRPC to the control plane through
// connect on net/http's HTTP/2 client (sidecar/internal/cpconn) and
// exports spans over OTLP/HTTP. Tests may still use them.
var notLinked = []string{
	"google.golang.org/grpc",
	"github.com/grpc-ecosystem/grpc-gateway",
	"github.com/envoyproxy/go-control-plane",
}

func TestBinaryDoesNotLinkGRPC(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the binary's packages: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, mod := range notLinked {
			if pkg == mod || strings.HasPrefix(pkg, mod+"/") {
				t.Errorf("weft-sidecar links %s (module %s)", pkg, mod)
			}
		}
	}
}
