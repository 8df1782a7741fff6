package tracing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver that decodes each request with
// the collector's own generated message.
type collector struct {
	status int
	mu     sync.Mutex
	reqs   []*coltracepb.ExportTraceServiceRequest
	errs   []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		c.errs = append(c.errs, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		c.errs = append(c.errs, err.Error())
	}
	c.reqs = append(c.reqs, req)
	w.WriteHeader(c.status)
}

// export sends one span through the real exporter to c and returns the
// tracer's counters once the provider is shut down (flushed).
func export(t *testing.T, c *collector) *Counters {
	t.Helper()
	srv := httptest.NewServer(c)
	defer srv.Close()
	tr := New(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	if err := tr.Apply(Config{Endpoint: srv.URL + "/v1/traces", Rate: 1, ServiceName: "order.shop"}); err != nil {
		t.Fatal(err)
	}
	_, sp, _ := tr.Start(context.Background(), "GET", trace.SpanKindServer)
	sp.End()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return tr.Counters()
}

func TestOTLPHTTPExport(t *testing.T) {
	c := &collector{status: http.StatusOK}
	n := export(t, c)
	if got := n.Exported.Load(); got != 1 || n.Dropped.Load() != 0 {
		t.Errorf("exported %d, dropped %d; want 1, 0", got, n.Dropped.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatalf("collector: %v", c.errs)
	}
	if len(c.reqs) != 1 || len(c.reqs[0].GetResourceSpans()) != 1 {
		t.Fatalf("requests %v", c.reqs)
	}
	rs := c.reqs[0].GetResourceSpans()[0]
	var svc string
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" {
			svc = kv.GetValue().GetStringValue()
		}
	}
	if svc != "order.shop" {
		t.Errorf("service.name %q, want order.shop", svc)
	}
	if ss := rs.GetScopeSpans(); len(ss) != 1 || len(ss[0].GetSpans()) != 1 || ss[0].GetSpans()[0].GetName() != "GET" {
		t.Errorf("spans %v, want one GET", ss)
	}
}

// A collector that answers an error fails the export: the span counts as
// dropped.
func TestOTLPHTTPExportRefused(t *testing.T) {
	c := &collector{status: http.StatusServiceUnavailable}
	n := export(t, c)
	if n.Exported.Load() != 0 || n.Dropped.Load() != 1 {
		t.Errorf("exported %d, dropped %d; want 0, 1", n.Exported.Load(), n.Dropped.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reqs) != 1 {
		t.Errorf("%d requests, want 1", len(c.reqs))
	}
}
