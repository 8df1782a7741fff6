package launch

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/model"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "plain", in: "a b  c", want: []string{"a", "b", "c"}},
		{name: "newlines", in: "a\n  b\tc\n", want: []string{"a", "b", "c"}},
		{name: "quotes", in: `a "b c" 'd e'f`, want: []string{"a", "b c", "d ef"}},
		{name: "empty quote", in: `a ""`, want: []string{"a", ""}},
		{name: "unterminated", in: `a "b`, wantErr: true},
		{name: "empty", in: "  ", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitCommand(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("splitCommand(%q) err = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("splitCommand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

const entriesYAML = `apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{port: 8080, targetPort: http}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-1
  namespace: shop
  labels: {app: payment}
  annotations:
    local.weft.dev/command: >-
      {{.BinDir}}/shop --role=payment --listen={{.Address}}:{{.Port "http"}}
      --proxy={{.ProxyURL}} --instance={{.Name}}.{{.Namespace}} --sa={{.ServiceAccount}}
spec:
  address: 127.0.0.10
  serviceAccount: payment
  ports: [{name: http, port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: client}
spec:
  address: 127.0.0.11
`

func TestWorkloadsFromFile(t *testing.T) {
	entries, err := workloadEntries("mesh.yaml", []byte(entriesYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2", len(entries))
	}
	byName := map[string]model.Workload{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	w, err := workloadFromEntry(byName["payment-1"], "/bin/dir")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/dir/shop", "--role=payment", "--listen=127.0.0.10:8080", "--proxy=http://127.0.0.10:15001", "--instance=payment-1.shop", "--sa=payment"}
	if !reflect.DeepEqual(w.Command, want) {
		t.Errorf("command = %q, want %q", w.Command, want)
	}
	if w.NodeID() != "payment-1.shop" || w.AdminAddress() != "127.0.0.10:15000" {
		t.Errorf("node id %q admin %q", w.NodeID(), w.AdminAddress())
	}
	c, err := workloadFromEntry(byName["client"], "/bin/dir")
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "default" || c.ServiceAccount != "default" || c.Command != nil {
		t.Errorf("sidecar-only entry = %+v", c)
	}
}

func TestWorkloadErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{name: "unknown port", yaml: strings.Replace(entriesYAML, `.Port "http"`, `.Port "grpc"`, 1), want: `no port named "grpc"`},
		{name: "not loopback", yaml: strings.Replace(entriesYAML, "127.0.0.10", "10.0.0.1", 1), want: "not a loopback address"},
		{name: "bad template", yaml: strings.Replace(entriesYAML, "{{.Name}}", "{{.Name", 1), want: mesh.AnnotationLocalCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries, err := workloadEntries("mesh.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = workloadFromEntry(entries[len(entries)-1], "/bin") // payment-1.shop sorts last
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestProcessStopEscalatesAndKillsGroup(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	sw := &syncWriter{out: &out}
	// The shell ignores SIGTERM and has a child: stop must SIGKILL the group.
	pidFile := filepath.Join(dir, "child.pid")
	p, err := startProcess("stubborn", []string{"/bin/sh", "-c", `trap "" TERM; sleep 60 & echo $! > ` + pidFile + `; echo hello; printf partial; wait`}, nil, filepath.Join(dir, "stubborn.log"), sw)
	if err != nil {
		t.Fatal(err)
	}
	var childPID int
	deadline := time.Now().Add(5 * time.Second)
	for childPID == 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			childPID, _ = strconv.Atoi(string(bytes.TrimSpace(b)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if childPID == 0 {
		t.Fatal("child never started")
	}
	start := time.Now()
	if err := p.stop(context.Background(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("stop took %s, want about the stop timeout", took)
	}
	if !p.exited() || !p.expected() {
		t.Error("process not marked exited/expected")
	}
	// The child was in the group: it is gone too (or a zombie being reaped).
	deadline = time.Now().Add(5 * time.Second)
	for syscall.Kill(childPID, 0) == nil && time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(childPID), "stat")); bytes.Contains(b, []byte(") Z ")) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(childPID), "stat")); err == nil && !bytes.Contains(b, []byte(") Z ")) {
		t.Errorf("child %d still alive: %s", childPID, b)
	}
	got := out.String()
	if !strings.Contains(got, "stubborn | hello\n") || !strings.Contains(got, "stubborn | partial\n") {
		t.Errorf("prefixed output = %q", got)
	}
	log, err := os.ReadFile(filepath.Join(dir, "stubborn.log"))
	if err != nil || string(log) != "hello\npartial" {
		t.Errorf("log file = %q, %v", log, err)
	}
}

func TestProcessGracefulStop(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("sleeper", []string{"/bin/sleep", "60"}, nil, filepath.Join(dir, "s.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.stop(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("SIGTERM stop took %s", took)
	}
}

func TestSidecarEnv(t *testing.T) {
	cfg := defaultConfig()
	WithEnv([]string{"A=1", "GOGC=100"})(&cfg)
	m := &Mesh{cfg: cfg}
	if got := m.sidecarEnv(); !slices.Equal(got, []string{"A=1", "GOGC=100"}) {
		t.Fatalf("without WithSidecarEnv: %q", got)
	}
	WithSidecarEnv("GOGC=off", "GODEBUG=gctrace=1")(&m.cfg)
	want := []string{"A=1", "GOGC=100", "GOGC=off", "GODEBUG=gctrace=1"}
	if got := m.sidecarEnv(); !slices.Equal(got, want) {
		t.Fatalf("sidecar env %q, want %q", got, want)
	}
	if !slices.Equal(m.cfg.env, []string{"A=1", "GOGC=100"}) {
		t.Fatalf("the other processes' env changed: %q", m.cfg.env)
	}
	m.cfg.env = nil
	if got := m.sidecarEnv(); len(got) < 2 || !slices.Equal(got[len(got)-2:], []string{"GOGC=off", "GODEBUG=gctrace=1"}) || len(got) != len(os.Environ())+2 {
		t.Fatalf("without WithEnv: the launcher's env plus the sidecar's, got %d entries ending %q", len(got), got[max(len(got)-2, 0):])
	}
}

func TestSidecarArgs(t *testing.T) {
	cfg := defaultConfig()
	m := &Mesh{cfg: cfg, binDir: "bin", sec: &security{}}
	w := Workload{Name: "a", Namespace: "ns", SidecarArgs: []string{"--mode=egress-gateway"}}
	base := m.sidecarArgs(w)
	if base[len(base)-1] != "--mode=egress-gateway" {
		t.Fatalf("the workload's own flags are not last without WithSidecarArgs: %q", base)
	}
	WithSidecarArgs("--trim-interval=0")(&m.cfg)
	got := m.sidecarArgs(w)
	want := append(slices.Clone(base), "--trim-interval=0")
	if !slices.Equal(got, want) {
		t.Fatalf("sidecar args %q, want %q (WithSidecarArgs after the workload's own, so they win)", got, want)
	}
	if cp := m.controlPlaneArgs(); slices.Contains(cp, "--trim-interval=0") {
		t.Fatalf("the control plane got a sidecar flag: %q", cp)
	}
}
