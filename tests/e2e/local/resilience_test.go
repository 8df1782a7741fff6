package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/launch"
	"github.com/weftmesh/weft/examples/shop/app"
)

// resilienceTemplate is the mesh of the resilience tests: a client sidecar
// and, per test, services whose workloads run the shop app with fault flags.
// Services: flaky (3 endpoints, flaky-1 fails 30%, retries on 5xx with a
// budget that lets every worker retry at once),
// broken (3 endpoints all failing, retries bounded by a 20% budget with a
// floor of 1), hang (never answers, 800ms route timeout), split (HTTPRoute
// 90/10 to split-a and split-b).
const resilienceTemplate = `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: client
  namespace: shop
  labels:
    app: client
spec:
  address: {{.IP 10}}
  serviceAccount: client
{{- range .Workloads}}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: {{.Name}}
  namespace: shop
  labels:
    app: {{.App}}
  annotations:
    local.weft.dev/command: >-
      {{"{{"}}.BinDir{{"}}"}}/shop --role=payment --instance={{"{{"}}.Name{{"}}"}} --listen={{"{{"}}.Address{{"}}"}}:{{"{{"}}.Port "http"{{"}}"}} {{.Flags}}
spec:
  address: {{$.IP .N}}
  serviceAccount: {{.App}}
  ports:
    - name: http
      port: 8080
{{- end}}
{{- range .Services}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{index . 0}}
  namespace: shop
spec:
  selector:
    app: {{index . 1}}
  ports:
    - name: http
      port: 8080
      targetPort: http
{{- end}}
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: flaky
  namespace: shop
spec:
  targetRef:
    name: flaky
  outlierDetection:
    consecutive5xx: 0
  retryBudget:
    percent: 50
    minRetryConcurrency: 8
  retry:
    attempts: 3
    retryOn: [5xx]
    backoffBase: 5ms
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: broken
  namespace: shop
spec:
  targetRef:
    name: broken
  outlierDetection:
    consecutive5xx: 0
  retryBudget:
    percent: 20
    minRetryConcurrency: 1
  retry:
    attempts: 5
    retryOn: [5xx]
    backoffBase: 1ms
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: hang
  namespace: shop
spec:
  targetRef:
    name: hang
  timeout: 800ms
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: split
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: split
  rules:
  - backendRefs:
    - name: split-a
      port: 8080
      weight: 90
    - name: split-b
      port: 8080
      weight: 10
`

type resWorkload struct {
	Name, App, Flags string
	N                int
}

type resParams struct {
	Base      string
	Workloads []resWorkload
	// Services are {name, selected app}.
	Services [][2]string
}

func (p resParams) IP(n int) string { return fmt.Sprintf("%s.%d", p.Base, n) }

var resTmpl = template.Must(template.New("resilience").Parse(resilienceTemplate))

// startResilienceMesh starts the resilience mesh on a random /24.
func startResilienceMesh(t *testing.T) *env {
	t.Helper()
	p := resParams{
		Base:     randomBase(),
		Services: [][2]string{{"flaky", "flaky"}, {"broken", "broken"}, {"hang", "hang"}, {"split", "split-a"}, {"split-a", "split-a"}, {"split-b", "split-b"}},
		Workloads: []resWorkload{
			{"flaky-1", "flaky", "--fault-error-rate=0.3", 20},
			{"flaky-2", "flaky", "", 21},
			{"flaky-3", "flaky", "", 22},
			{"broken-1", "broken", "--fault-error-rate=1 " + faultAdminFlag, 30},
			{"broken-2", "broken", "--fault-error-rate=1 " + faultAdminFlag, 31},
			{"broken-3", "broken", "--fault-error-rate=1 " + faultAdminFlag, 32},
			{"hang-1", "hang", "--fault-hang", 40},
			{"split-a-1", "split-a", "", 50},
			{"split-b-1", "split-b", "", 51},
		},
	}
	var b bytes.Buffer
	if err := resTmpl.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	return startMeshData(t, p.Base, b.Bytes())
}

// resp is one answer as the resilience tests see it.
type resp struct {
	status     int
	instance   string
	attempts   int
	overloaded string // x-weft-overloaded: the sidecar refused by itself
	upstream   string // x-weft-upstream
	start      time.Time
	elapsed    time.Duration
	err        error
}

// send sends GET url through the client sidecar with debug headers on.
func (e *env) send(ctx context.Context, url string, hdr ...string) resp {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return resp{err: err}
	}
	req.Header.Set(mesh.HeaderDebug, "1")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := e.client.Do(req)
	if err != nil {
		return resp{err: err, start: start, elapsed: time.Since(start)}
	}
	defer func() { _ = r.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	out := resp{status: r.StatusCode, start: start, elapsed: time.Since(start)}
	out.attempts, _ = strconv.Atoi(r.Header.Get(mesh.HeaderAttempts))
	out.overloaded = r.Header.Get(mesh.HeaderOverloaded)
	out.upstream = r.Header.Get(mesh.HeaderUpstream)
	if i := bytes.Index(body, []byte(`"instance":"`)); i >= 0 {
		rest := body[i+len(`"instance":"`):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			out.instance = string(rest[:j])
		}
	}
	return out
}

// hammer sends n requests to url from workers goroutines.
func (e *env) hammer(t *testing.T, url string, n, workers int) []resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out := make([]resp, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				out[i] = e.send(ctx, url)
			}
		})
	}
	wg.Wait()
	return out
}

func svcURL(svc string) string { return "http://" + svc + ".shop:8080" + app.PathPay }

func TestResilience(t *testing.T) {
	e := startResilienceMesh(t)

	t.Run("retries hide 30% errors on one of three endpoints", func(t *testing.T) {
		const n = 3000
		rs := e.hammer(t, svcURL("flaky"), n, 8)
		ok, retried := 0, 0
		var firstErr string
		for _, r := range rs {
			if r.err == nil && r.status == http.StatusOK {
				ok++
			} else if firstErr == "" {
				firstErr = fmt.Sprintf("status %d err %v", r.status, r.err)
			}
			if r.attempts > 1 {
				retried++
				// The debug headers name the try that succeeded and the
				// endpoint that served it: never flaky-1 (the only failing
				// one, avoided by the retry), and the one whose reply came.
				if r.status == http.StatusOK && (strings.Contains(r.upstream, "flaky-1") || !strings.Contains(r.upstream, r.instance+".shop")) {
					t.Errorf("answered on try %d by %q but x-weft-upstream says %q", r.attempts, r.instance, r.upstream)
				}
			}
		}
		rate := float64(ok) / n
		t.Logf("%d/%d ok (%.2f%%), %d answered after a retry; first failure: %s", ok, n, 100*rate, retried, firstErr)
		if rate < 0.999 {
			t.Errorf("success %.3f%%, want >= 99.9%%", 100*rate)
		}
		if retried == 0 {
			t.Error("no request needed a retry: the fault is not injected")
		}
	})

	t.Run("retry budget bounds upstream load when every endpoint fails", func(t *testing.T) {
		const n, workers = 2000, 20
		brokenReqs := func() int64 {
			var sum int64
			for _, w := range []string{"broken-1", "broken-2", "broken-3"} {
				sum += e.faultStats(t, w).Requests
			}
			return sum
		}
		before := brokenReqs()
		rs := e.hammer(t, svcURL("broken"), n, workers)
		tries := 0
		for _, r := range rs {
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d (err %v), want the upstream's 503", r.status, r.err)
			}
			tries += max(r.attempts, 1)
		}
		// Measured where it matters: the requests the upstream apps
		// counted (their fault admin API), not what the sidecar says.
		load := brokenReqs() - before
		// Without the budget every request would be tried 6 times.
		bound := 1.2*n + float64(n)/workers // 20% plus the floor of one retry in flight
		t.Logf("offered %d requests, upstream apps counted %d (%.3f×; the sidecar's attempt headers add up to %d); bound %.0f", n, load, float64(load)/n, tries, bound)
		if float64(load) > bound {
			t.Errorf("upstream load %d requests > %.0f", load, bound)
		}
		if load < n {
			t.Errorf("upstream apps counted %d requests, fewer than the %d offered: the count is broken", load, n)
		}
		if load == n {
			t.Error("no retries at all: the budget floor allows some")
		}
	})

	t.Run("hanging upstream answers 504 at the route timeout", func(t *testing.T) {
		for range 3 {
			r := e.send(t.Context(), svcURL("hang"))
			t.Logf("status %d after %s", r.status, r.elapsed.Round(time.Millisecond))
			if r.status != http.StatusGatewayTimeout {
				t.Fatalf("status %d (err %v), want 504", r.status, r.err)
			}
			if r.elapsed < 800*time.Millisecond || r.elapsed > 1500*time.Millisecond {
				t.Errorf("504 after %s, want at 800ms (not later than 1.5s)", r.elapsed)
			}
		}
	})

	t.Run("90/10 split", func(t *testing.T) {
		const n = 4000
		rs := e.hammer(t, svcURL("split"), n, 8)
		count := map[string]int{}
		for _, r := range rs {
			if r.status != http.StatusOK {
				t.Fatalf("status %d (err %v)", r.status, r.err)
			}
			count[r.instance]++
		}
		share := float64(count["split-b-1"]) / n
		t.Logf("split: %v (b share %.3f)", count, share)
		if share < 0.08 || share > 0.12 {
			t.Errorf("split-b share %.3f, want 0.10 ± 0.02", share)
		}
	})

	t.Run("debug headers name the try and the upstream", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, svcURL("split-a"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(mesh.HeaderDebug, "1")
		r, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Body.Close()
		if r.Header.Get(mesh.HeaderAttempts) != "1" || !strings.Contains(r.Header.Get(mesh.HeaderUpstream), "split-a-1") {
			t.Errorf("debug headers: attempts %q upstream %q", r.Header.Get(mesh.HeaderAttempts), r.Header.Get(mesh.HeaderUpstream))
		}
	})
}

// startMeshData starts a mesh from a rendered file on base.0/24, as
// startMesh does for the standard mesh.
func startMeshData(t *testing.T, base string, data []byte) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, meshFile: filepath.Join(dir, "mesh.yaml")}
	e.writeFile(t, data)
	start := time.Now()
	m, err := launch.Start(t.Context(), e.meshFile, binDir,
		launch.WithControlPlaneIP(base+".1"),
		launch.WithRunDir(filepath.Join(dir, "logs")),
		launch.WithLogLevel("info"),
		launch.WithStopTimeout(3*time.Second),
		launch.WithReadyTimeout(30*time.Second),
	)
	if err != nil {
		t.Fatalf("start mesh on %s.0/24: %v", base, err)
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
	t.Logf("mesh on %s.0/24 ready in %s (logs: %s)", base, time.Since(start).Round(time.Millisecond), m.RunDir())
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
