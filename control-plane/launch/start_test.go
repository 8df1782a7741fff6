package launch

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeBin builds testdata/fakeproc once and links it under the names the
// launcher runs.
func fakeBin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "fakeproc")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", exe, "./testdata/fakeproc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build fakeproc: %v\n%s", err, out)
	}
	for _, n := range []string{"weft-control-plane", "weft-sidecar", "app"} {
		if err := os.Link(exe, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func fakeMesh(t *testing.T, base, appFlags string) string {
	t.Helper()
	data := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: web-1
  namespace: demo
  labels: {app: web}
  annotations:
    local.weft.dev/command: '{{.BinDir}}/app --listen={{.Address}}:{{.Port "http"}} %s'
spec:
  address: %s.10
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: client, namespace: demo}
spec:
  address: %s.11
`, appFlags, base, base)
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func randomBase() string {
	return fmt.Sprintf("127.%d.%d", 100+rand.IntN(151), rand.IntN(256)) //nolint:gosec // G404: address spreading.
}

func TestStartRestartStop(t *testing.T) {
	bin := fakeBin(t)
	base := randomBase()
	var out lockedBuffer
	runDir := t.TempDir()
	m, err := Start(t.Context(), fakeMesh(t, base, ""), bin,
		WithControlPlaneIP(base+".1"), WithRunDir(runDir), WithOutput(&out), WithReadyTimeout(10*time.Second), WithStopTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.Background()) }()

	cp := m.ControlPlane()
	if cp.PID == 0 || cp.XDSAddress != base+".1:15012" || cp.DebugAddress != base+".1:15014" {
		t.Fatalf("control plane %+v", cp)
	}
	if len(m.Workloads()) != 2 || m.SidecarPID("web-1.demo") == 0 || m.SidecarPID("client.demo") == 0 {
		t.Fatalf("workloads %+v", m.Workloads())
	}
	for _, want := range []string{
		"control-plane | weft-control-plane starting with",
		`"--registry=file" "--file=` + m.MeshFile() + `" "--xds-address=` + base + `.1:15012"`,
		"web-1.demo/sidecar | weft-sidecar starting with",
		`"--ip=` + base + `.10"`,
		"web-1.demo/app | app starting with",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "web-1.demo-app.log")); err != nil {
		t.Error(err)
	}

	// Kill and restart the control plane alone.
	oldPID, sidecarPID := cp.PID, m.SidecarPID("web-1.demo")
	if err := m.KillControlPlane(); err != nil {
		t.Fatal(err)
	}
	if m.ControlPlane().PID != 0 {
		t.Error("control plane still has a pid after kill")
	}
	if err := m.StartControlPlane(t.Context()); err != nil {
		t.Fatal(err)
	}
	if pid := m.ControlPlane().PID; pid == 0 || pid == oldPID {
		t.Errorf("restarted control plane pid %d (was %d)", pid, oldPID)
	}
	if m.SidecarPID("web-1.demo") != sidecarPID {
		t.Error("sidecar changed")
	}
	log, _ := os.ReadFile(cp.LogFile)
	if n := strings.Count(string(log), "weft-control-plane starting"); n != 2 {
		t.Errorf("control plane log has %d runs, want 2 (appended)", n)
	}

	// Nothing died unexpectedly so far.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	if err := m.Wait(ctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
	cancel()
	// An app that dies is reported.
	if err := syscall.Kill(m.app("web-1.demo").pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err == nil || !strings.Contains(err.Error(), "web-1.demo/app exited") {
		t.Errorf("Wait after an app died = %v", err)
	}

	if err := m.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*process{m.cp, m.sidecar("web-1.demo"), m.sidecar("client.demo")} {
		if !p.exited() {
			t.Errorf("%s still running after Stop", p.name)
		}
	}
	if !strings.Contains(out.String(), "web-1.demo/sidecar | got SIGTERM") {
		t.Error("sidecar was not stopped with SIGTERM")
	}
	if err := m.StartControlPlane(t.Context()); err == nil {
		t.Error("StartControlPlane after Stop succeeded")
	}
}

func TestStartFailsWhenAnAppExits(t *testing.T) {
	bin := fakeBin(t)
	base := randomBase()
	start := time.Now()
	_, err := Start(t.Context(), fakeMesh(t, base, "--exit"), bin,
		WithControlPlaneIP(base+".1"), WithRunDir(t.TempDir()), WithReadyTimeout(10*time.Second), WithStopTimeout(2*time.Second))
	if err == nil {
		t.Fatal("Start succeeded with an app that exits")
	}
	for _, want := range []string{"web-1.demo/app exited", "exit status 3", "giving up"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("Start took %s to notice the exit", took)
	}
	// Everything it started is gone: the addresses are free again.
	m, err := Start(t.Context(), fakeMesh(t, base, ""), bin,
		WithControlPlaneIP(base+".1"), WithRunDir(t.TempDir()), WithReadyTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("second start on the same addresses: %v", err)
	}
	_ = m.Stop(t.Context())
}

func TestStartRejectsBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte("apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), path, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "mesh.yaml:2") {
		t.Fatalf("Start = %v, want an error at mesh.yaml:2", err)
	}
}
