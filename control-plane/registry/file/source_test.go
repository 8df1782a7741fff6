package file

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/model"
)

const oneWorkload = `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: a, namespace: shop}
spec: {address: 127.0.0.2}
`

const twoWorkloads = oneWorkload + `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: b, namespace: shop}
spec: {address: 127.0.0.3}
`

// watcher runs a Source and collects what it pushes and reports.
type watcher struct {
	mu     sync.Mutex
	states []model.State
	errs   []error
}

func (w *watcher) push(st model.State) {
	w.mu.Lock()
	w.states = append(w.states, st)
	w.mu.Unlock()
}

func (w *watcher) onError(err error) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.mu.Unlock()
}

// waitState waits for the n-th pushed state.
func (w *watcher) waitState(t *testing.T, n int, within time.Duration) model.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		w.mu.Lock()
		if len(w.states) >= n {
			st := w.states[n-1]
			w.mu.Unlock()
			return st
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no state #%d within %v", n, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *watcher) waitErr(t *testing.T, n int, within time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		w.mu.Lock()
		if len(w.errs) >= n {
			err := w.errs[n-1]
			w.mu.Unlock()
			return err
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no error report #%d within %v", n, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func startSource(t *testing.T, path string) *watcher {
	t.Helper()
	w := &watcher{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	src := New(path, WithErrorHandler(w.onError))
	go func() { done <- src.Run(ctx, w.push) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return w
}

func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestSourceFollowsEdits(t *testing.T) {
	// The e2e budget for an edit to reach a sidecar is 1 s; the registry's
	// share is one poll interval. Allow 500 ms for a loaded machine.
	const deadline = 500 * time.Millisecond
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	writeAtomic(t, path, oneWorkload)
	w := startSource(t, path)
	if st := w.waitState(t, 1, deadline); len(st.Workloads) != 1 {
		t.Fatalf("first state has %d workloads", len(st.Workloads))
	}

	// Atomic rename, as editors save.
	start := time.Now()
	writeAtomic(t, path, twoWorkloads)
	if st := w.waitState(t, 2, deadline); len(st.Workloads) != 2 {
		t.Fatalf("after rename: %d workloads", len(st.Workloads))
	}
	t.Logf("rename seen after %v", time.Since(start))

	// In-place write with the same size (an mtime check could miss it).
	start = time.Now()
	if err := os.WriteFile(path, []byte(strings.Replace(twoWorkloads, "127.0.0.3", "127.0.0.4", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	st := w.waitState(t, 3, deadline)
	if wl, _ := st.Workload("b.shop"); wl.Address != "127.0.0.4" {
		t.Fatalf("after in-place write: b is at %q", wl.Address)
	}
	t.Logf("in-place write seen after %v", time.Since(start))

	// A bad file is reported with line and field, and nothing is pushed.
	writeAtomic(t, path, twoWorkloads+"---\napiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: c, namespace: shop}\nspec:\n  address: 127.0.0.9\n  portz: x\n")
	err := w.waitErr(t, 1, deadline)
	var fe *Error
	if !errors.As(err, &fe) || fe.Line != 16 || fe.Field != "spec.portz" || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("bad file error = %v", err)
	}
	// A missing file is reported too; the last good state stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := w.waitErr(t, 2, deadline); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file error = %v", err)
	}
	w.mu.Lock()
	n := len(w.states)
	w.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d states pushed, want 3 (the bad ones must not be)", n)
	}

	// Fixing the file pushes again and clears the error.
	writeAtomic(t, path, oneWorkload)
	if st := w.waitState(t, 4, deadline); len(st.Workloads) != 1 {
		t.Fatalf("after fix: %d workloads", len(st.Workloads))
	}
	if err := w.waitErr(t, 3, deadline); err != nil {
		t.Fatalf("after fix the error handler got %v, want nil", err)
	}
}

func TestSourceWaitsForAGoodFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	writeAtomic(t, path, "apiVersion: v1\nkind: Nope\n")
	w := startSource(t, path)
	if err := w.waitErr(t, 1, time.Second); err == nil {
		t.Fatal("want an error for a bad first file")
	}
	writeAtomic(t, path, oneWorkload)
	w.waitState(t, 1, time.Second)
}

// TestReadFileReusesItsBuffer: polling an unchanged file must not allocate
// a copy of it each time (os.ReadFile did: 22 MB/s of garbage for a 2.2 MB
// mesh file read every 100 ms, each GC marking every proxy's state).
func TestReadFileReusesItsBuffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	content := strings.Repeat(oneWorkload+"---\n", 4000) // ~400 KB
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := readFile(path, &buf); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reads = 20
	for range reads {
		if err := readFile(path, &buf); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if buf.String() != content {
		t.Fatalf("read %d bytes, want the file's %d", buf.Len(), len(content))
	}
	// Each read may allocate the *os.File and such, never the content.
	if got := after.TotalAlloc - before.TotalAlloc; got >= uint64(len(content)) {
		t.Errorf("%d reads of a %d-byte file allocated %d bytes; want less than one copy", reads, len(content), got)
	}
}

func TestReadFileErrors(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("stale")
	err := readFile(filepath.Join(t.TempDir(), "missing.yaml"), &buf)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
	if buf.Len() != 0 {
		t.Errorf("missing file: buffer keeps %q, want it empty", buf.String())
	}
	if err := readFile(t.TempDir(), &buf); err == nil {
		t.Error("a directory: err = nil, want the read error")
	}
}
