package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/launch"
	"github.com/weftmesh/weft/examples/shop/app"
)

// Service URLs as apps in namespace shop write them.
const (
	paymentLong  = "http://payment.shop.svc.cluster.local:8080/pay"
	paymentSvc   = "http://payment.shop.svc:8080/pay"
	paymentNS    = "http://payment.shop:8080/pay"
	paymentShort = "http://payment:8080/pay"
	orderURL     = "http://order.shop:8080/order"
)

// env is one running mesh and a client that sends through its "client"
// workload's sidecar.
type env struct {
	meshFile string
	m        *launch.Mesh
	client   *http.Client
	dir      string
}

// startMesh writes the mesh for p and starts it; everything is stopped when
// the test ends, and on failure the end of every log is printed.
func startMesh(t *testing.T, p meshParams) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, meshFile: filepath.Join(dir, "mesh.yaml")}
	e.writeFile(t, renderMesh(t, p))
	start := time.Now()
	m, err := launch.Start(t.Context(), e.meshFile, binDir,
		launch.WithControlPlaneIP(p.IP(1)),
		launch.WithRunDir(filepath.Join(dir, "logs")),
		launch.WithLogLevel("debug"),
		launch.WithStopTimeout(3*time.Second),
		launch.WithReadyTimeout(30*time.Second),
	)
	if err != nil {
		t.Fatalf("start mesh on %s.0/24: %v", p.Base, err)
	}
	e.m = m
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs(t)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop mesh: %v", err)
		}
	})
	t.Logf("mesh on %s.0/24 ready in %s (logs: %s)", p.Base, time.Since(start).Round(time.Millisecond), m.RunDir())
	w, ok := m.Workload("client")
	if !ok {
		t.Fatal("no client workload")
	}
	if e.client, err = app.NewClient(w.ProxyURL(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// writeFile replaces the mesh file atomically (sibling + rename) and
// returns when it did.
func (e *env) writeFile(t testing.TB, data []byte) time.Time {
	t.Helper()
	tmp := e.meshFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.meshFile); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// writeMesh renders p into the mesh file.
func (e *env) writeMesh(t testing.TB, p meshParams) time.Time {
	t.Helper()
	return e.writeFile(t, renderMesh(t, p))
}

// get sends GET url through the client sidecar and decodes the shop reply.
func (e *env) get(ctx context.Context, url string) (app.Reply, int, error) {
	var r app.Reply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return r, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, resp.StatusCode, fmt.Errorf("GET %s: status %d: %.300s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, resp.StatusCode, fmt.Errorf("GET %s: %w: %.300s", url, err, body)
	}
	return r, resp.StatusCode, nil
}

// waitServedBy sends GET url until instance serves it, and returns how long
// after since that took. Any failed request fails the test.
func (e *env) waitServedBy(t testing.TB, url, instance string, since time.Time, deadline time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	for ctx.Err() == nil {
		r, _, err := e.get(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatalf("request failed while waiting for %s: %v", instance, err)
		}
		if r.Instance == instance {
			return time.Since(since)
		}
	}
	t.Fatalf("%s did not serve %s within %s", instance, url, deadline)
	return 0
}

// waitDrained sends GET url until streak requests in a row were not served
// by instance, and returns how long after since the streak began (0 if it
// began before since). Any failed request fails the test.
func (e *env) waitDrained(t testing.TB, url, instance string, since time.Time, streak int, deadline time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	run, runStart := 0, since
	for ctx.Err() == nil {
		sent := time.Now()
		r, _, err := e.get(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatalf("request failed while draining %s: %v", instance, err)
		}
		if r.Instance == instance {
			run = 0
			continue
		}
		if run == 0 {
			runStart = sent
		}
		if run++; run >= streak {
			return max(0, runStart.Sub(since))
		}
	}
	t.Fatalf("%s still served %s after %s", instance, url, deadline)
	return 0
}

// logOffset is the current size of a process's log.
func (e *env) logOffset(name string) int64 {
	fi, err := os.Stat(e.m.LogFile(name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitLogLine waits until a line written to the log after offset satisfies
// match, and returns it.
func (e *env) waitLogLine(name string, offset int64, deadline time.Duration, match func(string) bool) (string, bool) {
	end := time.Now().Add(deadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		data, _ := os.ReadFile(e.m.LogFile(name))
		if int64(len(data)) > offset {
			sc := bufio.NewScanner(bytes.NewReader(data[offset:]))
			sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
			for sc.Scan() {
				if match(sc.Text()) {
					return sc.Text(), true
				}
			}
		}
		if time.Now().After(end) {
			return "", false
		}
		<-tick.C
	}
}

func (e *env) dumpLogs(t testing.TB) {
	entries, err := os.ReadDir(e.m.RunDir())
	if err != nil {
		return
	}
	for _, de := range entries {
		data, err := os.ReadFile(filepath.Join(e.m.RunDir(), de.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last %d lines)\n%s", de.Name(), len(lines), strings.Join(lines, "\n"))
	}
}

// load sends GET url from a few workers, each one request after another,
// until stopped (at most a minute or 200000 requests, whichever comes
// first), and counts the outcomes.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErrs  []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func (e *env) startLoad(t testing.TB, url string, workers int) *load {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	l := &load{cancel: cancel}
	var budget atomic.Int64
	budget.Store(200000)
	for range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil && budget.Add(-1) >= 0 {
				_, _, err := e.get(ctx, url)
				switch {
				case err == nil:
					l.ok.Add(1)
				case ctx.Err() != nil && errors.Is(err, context.Canceled):
					// Stopped mid-request: not the mesh's doing.
				default:
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.firstErrs) < 5 {
						l.firstErrs = append(l.firstErrs, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					l.mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// waitOK waits until the load has n more successes than it had at the call.
func (l *load) waitOK(t *testing.T, n int64, deadline time.Duration) {
	t.Helper()
	target := l.ok.Load() + n
	end := time.Now().Add(deadline)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for l.ok.Load() < target {
		if time.Now().After(end) {
			t.Fatalf("load: %d more successful requests did not come within %s (ok %d, failed %d)", n, deadline, l.ok.Load(), l.failed.Load())
		}
		<-tick.C
	}
}

// report stops the load and fails the test if any request failed.
func (l *load) report(t *testing.T, what string) {
	t.Helper()
	l.stop()
	t.Logf("%s: %d requests succeeded, %d failed", what, l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Errorf("%s: %d requests failed; first errors:\n  %s", what, l.failed.Load(), strings.Join(l.firstErrs, "\n  "))
	}
}

// proxyInfo is one entry of the control plane's GET /debug/proxies.
type proxyInfo struct {
	ID          string    `json:"id"`
	ConnectedAt time.Time `json:"connectedAt"`
	Versions    map[string]struct {
		Acked string `json:"acked"`
		Nack  string `json:"nack"`
	} `json:"versions"`
}

func (e *env) proxies(ctx context.Context) ([]proxyInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.m.ControlPlane().DebugAddress+"/debug/proxies", nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/debug/proxies: %s", resp.Status)
	}
	var ps []proxyInfo
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return nil, fmt.Errorf("/debug/proxies: %w", err)
	}
	return ps, nil
}

// waitAllConnected waits until every workload's sidecar is connected to the
// control plane and has ACKed something.
func (e *env) waitAllConnected(t testing.TB, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	var last string
	for {
		ps, err := e.proxies(ctx)
		if err == nil {
			acked := map[string]bool{}
			for _, p := range ps {
				for _, v := range p.Versions {
					if v.Acked != "" {
						acked[p.ID] = true
					}
				}
			}
			var missing []string
			for _, w := range e.m.Workloads() {
				if !acked[w.NodeID()] {
					missing = append(missing, w.NodeID())
				}
			}
			if len(missing) == 0 {
				return time.Since(start)
			}
			last = "not connected or nothing ACKed: " + strings.Join(missing, ", ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sidecars did not all reconnect within %s: %s", deadline, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
