package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/control-plane/launch"
	"github.com/weftmesh/weft/examples/shop/app"
)

// The scaling switch in the shop's mesh file.
const (
	labelServing = "serving"
	servingYes   = "yes"
	servingNo    = "no"
)

// scaledEntries are the payment endpoints the demo adds and removes.
var scaledEntries = [...]string{"payment-2", "payment-3"}

// Names in the shop's mesh file the demo relies on.
const (
	loadgenWorkload = "loadgen"
	gatewayWorkload = "api-gateway-1"
	checkoutURL     = "http://api-gateway.shop.svc.cluster.local:8080" + app.PathCheckout
)

// Config is one demo run.
type Config struct {
	MeshFile string // the shop's mesh file; the demo edits a copy
	BinDir   string // weft-control-plane, weft-sidecar and shop
	// RunDir holds the mesh file's copy and the logs; default a new temporary
	// directory, removed after a successful run.
	RunDir   string
	Duration time.Duration // how long the load runs
	Rate     int           // checkouts per second
	Workers  int
	// ScaleUpAt and ScaleDownAt are offsets into the load.
	ScaleUpAt, ScaleDownAt time.Duration
	// DrainBound: a removed endpoint that serves a checkout started this
	// long after the edit fails the demo.
	DrainBound time.Duration
	Timeout    time.Duration // per checkout
	Verbose    bool          // stream every process's log to Log
	// Jaeger is an OTLP/HTTP collector (host:port, Jaeger's 4318): the demo points the
	// mesh's tracing at it (sampling 1) with the weft-mesh-config
	// ConfigMap; JaegerQuery (the query API's base URL) is printed as the
	// link to the demo's traces.
	Jaeger, JaegerQuery string
	Out                 io.Writer // the report
	Log                 io.Writer // process logs, with Verbose
}

// DefaultConfig is `make demo`: 20 s at 40 checkouts/s over 4 workers
// (800 checkouts), payment scaled to 3 at 6 s and back to 1 at 13 s.
func DefaultConfig() Config {
	return Config{
		Duration: 20 * time.Second, Rate: 40, Workers: 4,
		ScaleUpAt: 6 * time.Second, ScaleDownAt: 13 * time.Second,
		DrainBound: 2 * time.Second, Timeout: 5 * time.Second,
		Out: os.Stdout, Log: os.Stderr,
	}
}

// Run runs the demo; it returns an error if anything failed (see the package
// doc). The mesh is stopped before Run returns, whatever happened.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Rate <= 0 || cfg.Workers <= 0 || cfg.Duration <= 0 {
		return errors.New("demo: rate, workers and duration must be positive")
	}
	if cfg.ScaleUpAt <= 0 || cfg.ScaleUpAt >= cfg.ScaleDownAt || cfg.ScaleDownAt >= cfg.Duration {
		return errors.New("demo: want 0 < scale-up-at < scale-down-at < duration")
	}
	keep := cfg.RunDir != ""
	if cfg.RunDir == "" {
		if cfg.RunDir, err = os.MkdirTemp("", "weft-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.RunDir, 0o750); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	meshFile := filepath.Join(cfg.RunDir, "mesh.yaml")
	data, err := os.ReadFile(cfg.MeshFile)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if cfg.Jaeger != "" {
		data = append(data, fmt.Sprintf(tracingConfigMap, cfg.Jaeger)...)
	}
	if err := writeFile(meshFile, data); err != nil {
		return err
	}
	if cfg.JaegerQuery != "" {
		defer fmt.Fprintf(cfg.Out, "traces: %s/api/traces?service=api-gateway.shop&limit=20 (one trace: %s/api/traces/<trace id>)\n", cfg.JaegerQuery, cfg.JaegerQuery)
	}
	defer func() {
		if err == nil && !keep {
			_ = os.RemoveAll(cfg.RunDir)
		} else {
			fmt.Fprintf(cfg.Out, "logs kept in %s\n", filepath.Join(cfg.RunDir, "logs"))
		}
	}()

	fmt.Fprintf(cfg.Out, "starting the shop from %s (copy in %s)\n", cfg.MeshFile, meshFile)
	opts := []launch.Option{
		launch.WithRunDir(filepath.Join(cfg.RunDir, "logs")),
		launch.WithLogger(slog.New(slog.DiscardHandler)),
	}
	if cfg.Verbose {
		opts = append(opts, launch.WithOutput(cfg.Log))
	}
	started := time.Now()
	m, err := launch.Start(ctx, meshFile, cfg.BinDir, opts...)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if serr := m.Stop(stopCtx); serr != nil {
			err = errors.Join(err, fmt.Errorf("demo: stop: %w", serr))
		} else {
			fmt.Fprintln(cfg.Out, "stopped everything")
		}
	}()
	fmt.Fprintf(cfg.Out, "mesh ready in %s: control plane %s, %d workloads\n",
		time.Since(started).Round(time.Millisecond), m.ControlPlane().XDSAddress, len(m.Workloads()))

	client, target, err := loadClient(m, cfg.Timeout)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	fmt.Fprintf(cfg.Out, "load: %d checkouts at %d/s over %d workers, %s\n", total, cfg.Rate, cfg.Workers, target)

	st := newStats()
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loadStart := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { runLoad(loadCtx, client, target, total, cfg.Rate, cfg.Workers, st) })

	upAt, downAt, scaleErr := scale(ctx, cfg, meshFile, loadStart)
	wg.Wait()
	if scaleErr != nil {
		return scaleErr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted: %w", ctx.Err())
	}
	fmt.Fprintln(cfg.Out)
	if err := st.write(cfg.Out); err != nil {
		return err
	}
	fmt.Fprintln(cfg.Out)
	return verdict(cfg, st, upAt, downAt)
}

// loadClient returns the client the load is sent with and the URL: through
// the loadgen sidecar when the mesh has one, else straight to api-gateway.
func loadClient(m *launch.Mesh, timeout time.Duration) (*http.Client, string, error) {
	if w, ok := m.Workload(loadgenWorkload); ok {
		c, err := app.NewClient(w.ProxyURL(), timeout)
		return c, checkoutURL + " via " + w.ProxyURL(), err
	}
	w, ok := m.Workload(gatewayWorkload)
	if !ok || len(w.AppAddresses()) == 0 {
		return nil, "", fmt.Errorf("demo: the mesh has neither %s nor %s", loadgenWorkload, gatewayWorkload)
	}
	c, err := app.NewClient("", timeout)
	return c, "http://" + w.AppAddresses()[0] + app.PathCheckout, err
}

// runLoad sends total checkouts at rate per second over workers, and
// records every hop of each in st.
func runLoad(ctx context.Context, client *http.Client, target string, total, rate, workers int, st *stats) {
	url, _, _ := strings.Cut(target, " via ")
	jobs := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				checkout(ctx, client, url, st)
			}
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
send:
	for range total {
		select {
		case <-ctx.Done():
			break send
		case <-tick.C:
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
}

func checkout(ctx context.Context, client *http.Client, url string, st *stats) {
	at := time.Now()
	smp := sample{route: routeOrder[0], at: at}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		smp.err = err.Error()
		st.add(smp)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		smp.latency, smp.err = time.Since(at), err.Error()
		st.add(smp)
		return
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	smp.latency = time.Since(at)
	var r app.Reply
	switch {
	case rerr != nil:
		smp.err = "read body: " + rerr.Error()
	case json.Unmarshal(body, &r) != nil:
		smp.err = fmt.Sprintf("status %d, not a shop reply: %.200s", resp.StatusCode, body)
	case resp.StatusCode != http.StatusOK:
		smp.err = fmt.Sprintf("status %d", resp.StatusCode)
	}
	smp.instance = r.Instance
	st.add(smp)
	st.addReply(at, &r)
}

// scale edits the mesh file at ScaleUpAt and ScaleDownAt (offsets from
// start) and returns when it did.
func scale(ctx context.Context, cfg Config, meshFile string, start time.Time) (upAt, downAt time.Time, err error) {
	steps := []struct {
		at    time.Duration
		value string
		what  string
		when  *time.Time
	}{
		{cfg.ScaleUpAt, servingYes, "scaled payment 1 -> 3 endpoints", &upAt},
		{cfg.ScaleDownAt, servingNo, "scaled payment 3 -> 1 endpoint", &downAt},
	}
	for _, s := range steps {
		t := time.NewTimer(time.Until(start.Add(s.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return upAt, downAt, fmt.Errorf("demo: interrupted: %w", ctx.Err())
		case <-t.C:
		}
		data, err := os.ReadFile(meshFile) //nolint:gosec // G304: our own copy.
		if err != nil {
			return upAt, downAt, fmt.Errorf("demo: %w", err)
		}
		for _, name := range scaledEntries {
			if data, err = setLabel(data, "WorkloadEntry", name, labelServing, s.value); err != nil {
				return upAt, downAt, err
			}
		}
		if err := writeFile(meshFile, data); err != nil {
			return upAt, downAt, err
		}
		*s.when = time.Now()
		fmt.Fprintf(cfg.Out, "t=%-5s %s (%s labelled %s=%q in the mesh file)\n",
			time.Since(start).Round(100*time.Millisecond), s.what, strings.Join(scaledEntries[:], ", "), labelServing, s.value)
	}
	return upAt, downAt, nil
}

// verdict checks the run and prints how long the scaling took to show.
func verdict(cfg Config, st *stats, upAt, downAt time.Time) error {
	var problems []string
	if n := st.totalErrors(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed", n))
	}
	for _, name := range scaledEntries {
		first, ok := st.firstServed(name, upAt)
		if !ok || !first.Before(downAt) {
			problems = append(problems, name+" never served while scaled up")
			continue
		}
		fmt.Fprintf(cfg.Out, "%s: first checkout served %s after the scale-up edit\n", name, first.Sub(upAt).Round(time.Millisecond))
		last, _ := st.lastServed(name)
		if d := last.Sub(downAt); d > 0 {
			fmt.Fprintf(cfg.Out, "%s: last checkout served %s after the scale-down edit\n", name, d.Round(time.Millisecond))
			if d > cfg.DrainBound {
				problems = append(problems, fmt.Sprintf("%s still served %s after it was removed (bound %s)", name, d.Round(time.Millisecond), cfg.DrainBound))
			}
		} else {
			fmt.Fprintf(cfg.Out, "%s: served nothing started after the scale-down edit\n", name)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(cfg.Out, "FAIL: "+strings.Join(problems, "; "))
		return fmt.Errorf("demo: %s", strings.Join(problems, "; "))
	}
	fmt.Fprintln(cfg.Out, "PASS: no request failed")
	return nil
}

// writeFile replaces path atomically (write a sibling, then rename), so the
// control plane never reads half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// tracingConfigMap is appended to the demo's mesh file with --jaeger
// (docs/architecture.md, "Observability contract").
const tracingConfigMap = `
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: weft-mesh-config
  namespace: weft-system
data:
  mesh: |
    tracing: {endpoint: "%s", samplingRate: 1}
`
