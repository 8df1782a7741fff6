package h2server

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
)

// TestH2Spec runs the h2spec conformance suite (github.com/summerwind/h2spec)
// against the server over h2c when $H2SPEC names its binary.
func TestH2Spec(t *testing.T) {
	bin := os.Getenv("H2SPEC")
	if bin == "" {
		t.Skip("set H2SPEC to the h2spec binary to run the conformance suite")
	}
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "hello from h2server\n")
	})})
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.CommandContext(t.Context(), bin, "-h", host, "-p", port, "-o", "5").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("h2spec: %v", err)
	}
}
