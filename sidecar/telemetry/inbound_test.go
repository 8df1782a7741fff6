package telemetry_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftmesh/weft/sidecar/accesslog"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// An inbound request carrying a caller's trace context, with tracing off:
// the context is passed on to the app untouched and, with access logs
// off, never parsed (the record allocates nothing); with access logs on,
// its trace id is still in the line.
func TestInboundTraceContextWithTracingOff(t *testing.T) {
	const (
		traceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
		traceparent = "00-" + traceID + "-00f067aa0ba902b7-01"
	)
	var buf bytes.Buffer
	al := accesslog.New(&buf)
	o := telemetry.New(telemetry.Self{Workload: "order-1", Namespace: "shop"}, tracing.New(slog.New(slog.DiscardHandler)), nil, al)
	r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
	r.Header.Set("Traceparent", traceparent)
	w := httptest.NewRecorder()
	serve := func() {
		iw, ir, rq := o.Inbound(w, r)
		if ir != r {
			t.Fatal("Inbound copied the request with tracing off")
		}
		rq.Note("default", "inbound|8080||", nil, "spiffe://cluster.local/ns/shop/sa/api")
		iw.WriteHeader(http.StatusOK)
		o.Finish(rq)
	}

	serve()
	if got := r.Header.Get("Traceparent"); got != traceparent {
		t.Errorf("traceparent passed to the app = %q, want %q", got, traceparent)
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, serve); n != 0 {
			t.Errorf("inbound record with tracing and access logs off: %.1f allocations per request, want 0", n)
		}
	}

	al.Apply(accesslog.Config{Enabled: true, Rate: 1})
	buf.Reset()
	serve()
	var e accesslog.Entry
	if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &e); err != nil {
		t.Fatalf("access log %q: %v", buf.String(), err)
	}
	if e.TraceID != traceID {
		t.Errorf("access log trace_id = %q, want the caller's %s", e.TraceID, traceID)
	}
}
