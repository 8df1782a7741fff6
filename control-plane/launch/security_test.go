package launch

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/ca"
)

// TestStartSecure checks what Start prepares for the secure channel: the
// CA directory, one 0600 token file per sidecar proving that workload, the
// hash file for the control plane, and the flags of both.
func TestStartSecure(t *testing.T) {
	bin := fakeBin(t)
	base := randomBase()
	var out lockedBuffer
	m, err := Start(t.Context(), fakeMesh(t, base, ""), bin,
		WithControlPlaneIP(base+".1"), WithRunDir(t.TempDir()), WithOutput(&out), WithReadyTimeout(10*time.Second),
		WithStopTimeout(2*time.Second), WithSecureXDS(), WithCertLifetime(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()
	if !m.Secure() {
		t.Fatal("mesh is not secure")
	}
	if _, err := os.Stat(m.TrustBundleFile()); err != nil {
		t.Fatal(err)
	}
	tokens, err := ca.ReadJoinTokensFile(m.CADir()+"/"+joinTokensFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range m.Workloads() {
		path := m.TokenFile(w.NodeID())
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		id, err := tokens.Authenticate(t.Context(), strings.TrimSpace(string(b)))
		if err != nil || id.Workload != w.Name || id.Namespace != w.Namespace || id.ServiceAccount != w.ServiceAccount {
			t.Errorf("token of %s proves %+v (%v)", w.NodeID(), id, err)
		}
		if !strings.Contains(out.String(), `"--token-file=`+path+`"`) {
			t.Errorf("sidecar %s not started with its token file", w.NodeID())
		}
	}
	for _, want := range []string{`"--ca-dir=` + m.CADir() + `"`, `"--cert-lifetime=5s"`, `"--mtls-mode=STRICT"`, `"--ca-bundle=` + m.TrustBundleFile() + `"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(out.String(), "--insecure-xds") {
		t.Error("control plane started with --insecure-xds")
	}
}
