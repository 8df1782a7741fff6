package jaegerharness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ports Jaeger binds on its address.
const (
	PortOTLPGRPC  = 4317
	PortOTLPHTTP  = 4318
	PortQueryHTTP = 16686
	PortQueryGRPC = 16685
	PortHealth    = 13133
)

// Jaeger is a running Jaeger.
type Jaeger struct {
	IP  string
	cmd *exec.Cmd
	dir string
}

// OTLPHTTP is the OTLP/HTTP receiver's host:port (the mesh's tracing
// endpoint: the sidecars export OTLP/HTTP).
func (j *Jaeger) OTLPHTTP() string { return net.JoinHostPort(j.IP, strconv.Itoa(PortOTLPHTTP)) }

// QueryURL is the query API's base URL.
func (j *Jaeger) QueryURL() string {
	return "http://" + net.JoinHostPort(j.IP, strconv.Itoa(PortQueryHTTP))
}

// repoRoot finds the repository from this file's location.
func repoRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(f), "..", ".."))
}

// Binary builds (or finds cached) the Jaeger binary: $WEFT_JAEGER_BIN, or
// hack/jaeger/build.sh's output.
func Binary(ctx context.Context) (string, error) {
	if b := os.Getenv("WEFT_JAEGER_BIN"); b != "" {
		return b, nil
	}
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot(), "hack", "jaeger", "build.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("jaegerharness: hack/jaeger/build.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts Jaeger on ip (empty: a random 127.<100..250>.x.y) and stops
// it when the test ends.
func Start(t testing.TB, ip string) *Jaeger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin, err := Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ip == "" {
		ip = fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(151), rand.IntN(256), 1+rand.IntN(250)) //nolint:gosec // G404: address spreading.
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(Config(ip)), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "jaeger.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg) //nolint:gosec,noctx // G204: our own binary; it outlives any one context and is stopped by the harness cleanup.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &Jaeger{IP: ip, cmd: cmd, dir: dir}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("jaeger log:\n%s", tail(string(b), 4000))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		err := getJSON(rctx, j.QueryURL()+"/api/services", &struct{}{})
		rcancel()
		if err == nil {
			return j
		}
		select {
		case <-exited:
			t.Fatalf("jaeger exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready in 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Config is the Jaeger v2 configuration bound on ip (as hack/jaeger/config.sh).
func Config(ip string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource: {service.name: jaeger}
    metrics: {level: none}
    logs: {level: info}
extensions:
  healthcheckv2:
    use_v2: true
    http: {endpoint: "%[1]s:%[6]d"}
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "%[1]s:%[4]d"}
    grpc: {endpoint: "%[1]s:%[5]d"}
  jaeger_storage:
    backends:
      mem: {memory: {max_traces: 100000}}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "%[1]s:%[2]d"}
      http: {endpoint: "%[1]s:%[3]d"}
processors:
  batch: {timeout: 200ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
`, ip, PortOTLPGRPC, PortOTLPHTTP, PortQueryHTTP, PortQueryGRPC, PortHealth)
}

// Trace is a trace as the query API returns it (/api/traces/<id>).
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
}

// Span is one span of a Trace.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	ProcessID     string      `json:"processID"`
	Tags          []KeyValue  `json:"tags"`
}

// Reference links a span to its parent.
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is a span's service.
type Process struct {
	ServiceName string `json:"serviceName"`
}

// KeyValue is a tag.
type KeyValue struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Tag returns a span tag's value as a string ("" when absent).
func (s Span) Tag(key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// Parent is the CHILD_OF reference's span id, or "".
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// ErrNotFound is returned while a trace is not in Jaeger.
var ErrNotFound = errors.New("jaegerharness: trace not found")

// Trace reads a trace by id.
func (j *Jaeger) Trace(ctx context.Context, id string) (Trace, error) {
	var out struct {
		Data []Trace `json:"data"`
	}
	if err := getJSON(ctx, j.QueryURL()+"/api/traces/"+id, &out); err != nil {
		return Trace{}, err
	}
	if len(out.Data) == 0 {
		return Trace{}, ErrNotFound
	}
	return out.Data[0], nil
}

// Services lists the services Jaeger has spans of.
func (j *Jaeger) Services(ctx context.Context) ([]string, error) {
	var out struct {
		Data []string `json:"data"`
	}
	err := getJSON(ctx, j.QueryURL()+"/api/services", &out)
	return out.Data, err
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jaegerharness: GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
