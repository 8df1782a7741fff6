package telemetry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/accesslog"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// waitSpans waits (deadline 5 s) until rec holds n spans, then one batch
// interval more, and returns them; it fails when the count is not n.
func waitSpans(t *testing.T, rec *recorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.all()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // one more batch interval: nothing extra may arrive
	got := rec.all()
	if len(got) != n {
		for _, s := range got {
			t.Logf("span %s %s %v", s.SpanKind(), s.Name(), s.Attributes())
		}
		t.Fatalf("%d spans exported, want %d", len(got), n)
	}
	return got
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

var (
	orderEP = &lb.Endpoint{Addr: "127.0.0.9:8080", Workload: "order-1.shop", Identity: "spiffe://cluster.local/ns/shop/sa/order"}
	apiSelf = telemetry.Self{Workload: "api", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/api"}
)

// TestRetryAttemptsAreSpans: each try is its own CLIENT span, numbered,
// the retry flagged, the failed try's status an error; the access log
// line counts both.
func TestRetryAttemptsAreSpans(t *testing.T) {
	rec := &recorder{}
	tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "api.shop"})
	var logBuf bytes.Buffer
	al := accesslog.New(&logBuf)
	al.Apply(accesslog.Config{Enabled: true, Rate: 1})
	o := telemetry.New(apiSelf, tr, nil, al)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
	r.Header.Set("Traceparent", tp)
	w, r, rq := o.Outbound(httptest.NewRecorder(), r)
	rq.Note("default", "outbound|8080||order.shop.svc.cluster.local", nil, "")
	var sent []string
	for try, status := range []int{503, 200} {
		req, sp := rq.StartAttempt(r.Clone(r.Context()), orderEP, try+1)
		sent = append(sent, req.Header.Get("Traceparent"))
		rq.EndAttempt(sp, time.Now(), status, nil)
	}
	w.WriteHeader(http.StatusOK)
	o.Finish(rq)

	spans := waitSpans(t, rec, 2)
	if sent[0] == sent[1] {
		t.Errorf("both tries sent traceparent %s", sent[0])
	}
	for i, s := range spans {
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("span %d: kind %s parent %s, want client of the incoming context", i, s.SpanKind(), s.Parent().SpanID())
		}
		if v, _ := attr(s, "weft.attempt"); v.AsInt64() != int64(i+1) {
			t.Errorf("span %d: weft.attempt %v", i, v.AsInt64())
		}
		if v, _ := attr(s, "weft.destination.identity"); v.AsString() != orderEP.Identity {
			t.Errorf("span %d: destination identity %q", i, v.AsString())
		}
	}
	if spans[0].Status().Code != codes.Error {
		t.Errorf("the 503 try's span status is %v, want Error", spans[0].Status().Code)
	}
	if _, ok := attr(spans[0], "weft.response_flags"); ok {
		t.Error("the first try is flagged")
	}
	if v, _ := attr(spans[1], "weft.response_flags"); v.AsString() != telemetry.FlagRetried {
		t.Errorf("the second try's flags %q, want %q", v.AsString(), telemetry.FlagRetried)
	}
	var e accesslog.Entry
	if err := json.Unmarshal(logBuf.Bytes(), &e); err != nil {
		t.Fatalf("access log %q: %v", logBuf.String(), err)
	}
	if e.Attempts != 2 || e.Flags != telemetry.FlagRetried || e.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || e.Status != 200 {
		t.Errorf("access log entry %+v", e)
	}
}

// TestResponseFlagsOnSpans: refusals are visible in the trace with their
// flags: outbound requests that reached no upstream are one CLIENT span
// (attempt 0); an inbound refusal is the SERVER span's flag.
func TestResponseFlagsOnSpans(t *testing.T) {
	tests := []struct {
		name      string
		inbound   bool
		status    int
		header    [2]string // response header set by the handler
		flag      string    // rq.Flag by the handler
		wantKind  trace.SpanKind
		wantFlags string
	}{
		{name: "outbound denied by the egress allowlist", status: http.StatusForbidden, wantKind: trace.SpanKindClient, wantFlags: "denied"},
		{name: "outbound breaker open", status: http.StatusServiceUnavailable, header: [2]string{mesh.HeaderOverloaded, mesh.OverloadNoHealthy}, flag: telemetry.FlagBreakerOpen, wantKind: trace.SpanKindClient, wantFlags: "breaker_open,no_healthy"},
		{name: "outbound cluster limit", status: http.StatusServiceUnavailable, header: [2]string{mesh.HeaderOverloaded, "max_requests"}, wantKind: trace.SpanKindClient, wantFlags: "overloaded"},
		{name: "outbound route timeout", status: http.StatusGatewayTimeout, header: [2]string{mesh.HeaderTimeout, "request"}, wantKind: trace.SpanKindClient, wantFlags: "timeout"},
		{name: "inbound denied by RBAC", inbound: true, status: http.StatusForbidden, wantKind: trace.SpanKindServer, wantFlags: "denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "api.shop"})
			o := telemetry.New(apiSelf, tr, nil, nil)
			r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
			var (
				w  http.ResponseWriter
				rq *telemetry.Request
			)
			if tc.inbound {
				w, _, rq = o.Inbound(httptest.NewRecorder(), r)
			} else {
				w, _, rq = o.Outbound(httptest.NewRecorder(), r)
				rq.Note("default", "outbound|8080||order.shop.svc.cluster.local", nil, "")
			}
			if tc.flag != "" {
				rq.Flag(tc.flag)
			}
			if tc.header[0] != "" {
				w.Header().Set(tc.header[0], tc.header[1])
			}
			w.WriteHeader(tc.status)
			o.Finish(rq)
			s := waitSpans(t, rec, 1)[0]
			if s.SpanKind() != tc.wantKind {
				t.Errorf("span kind %s, want %s", s.SpanKind(), tc.wantKind)
			}
			if v, _ := attr(s, "weft.response_flags"); v.AsString() != tc.wantFlags {
				t.Errorf("weft.response_flags %q, want %q", v.AsString(), tc.wantFlags)
			}
			if v, _ := attr(s, "http.response.status_code"); v.AsInt64() != int64(tc.status) {
				t.Errorf("status attribute %d, want %d", v.AsInt64(), tc.status)
			}
			// Semantic conventions: a 4xx is an error for the client, not
			// for the server.
			want := codes.Error
			if tc.inbound && tc.status < 500 {
				want = codes.Unset
			}
			if s.Status().Code != want {
				t.Errorf("span status %v, want %v", s.Status().Code, want)
			}
		})
	}
}

// TestAccessLogLines: one JSON line per request with the contract's
// fields; the sampling rate and the status filter apply; off logs nothing.
func TestAccessLogLines(t *testing.T) {
	// Every field of the contract, always present.
	fields := []string{
		"time", "direction", "trace_id", "span_id", "method", "authority", "path", "protocol", "status",
		"flags", "route", "cluster", "upstream", "attempts", "source_identity", "destination_identity",
		"source_workload", "destination_workload", "bytes_received", "bytes_sent", "duration_ms", "upstream_duration_ms",
	}
	tests := []struct {
		name     string
		cfg      accesslog.Config
		n200     int
		n503     int
		min, max int // lines
	}{
		{name: "off", cfg: accesslog.Config{}, n200: 10, n503: 10, min: 0, max: 0},
		{name: "every request", cfg: accesslog.Config{Enabled: true, Rate: 1}, n200: 10, n503: 5, min: 15, max: 15},
		{name: "errors only", cfg: accesslog.Config{Enabled: true, Rate: 1, MinStatus: 500}, n200: 10, n503: 5, min: 5, max: 5},
		{name: "rate 0", cfg: accesslog.Config{Enabled: true, Rate: 0}, n200: 100, min: 0, max: 0},
		// Binomial(2000, 0.5): sd 22; 880..1120 is beyond 5 sd.
		{name: "rate 0.5", cfg: accesslog.Config{Enabled: true, Rate: 0.5}, n200: 2000, min: 880, max: 1120},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "api.shop"})
			var buf bytes.Buffer
			al := accesslog.New(&buf)
			al.Apply(tc.cfg)
			o := telemetry.New(apiSelf, tr, nil, al)
			for range tc.n200 {
				outboundOnce(o, nil, 200)
			}
			for range tc.n503 {
				outboundOnce(o, nil, 503)
			}
			out := strings.TrimSpace(buf.String())
			var lines []string
			if out != "" {
				lines = strings.Split(out, "\n")
			}
			if len(lines) < tc.min || len(lines) > tc.max {
				t.Fatalf("%d lines, want %d..%d", len(lines), tc.min, tc.max)
			}
			for _, l := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if tc.cfg.MinStatus > 0 && m["status"].(float64) < float64(tc.cfg.MinStatus) {
					t.Errorf("line with status %v under the filter's %d", m["status"], tc.cfg.MinStatus)
				}
				for _, f := range fields {
					if _, ok := m[f]; !ok {
						t.Fatalf("line has no %q: %s", f, l)
					}
				}
			}
		})
	}
}

// TestTCPStreamMetrics: a CONNECT is a TCP stream in the TCP metrics (not
// the request metrics), with the request labels; a refused one is
// counted opened and closed with no bytes.
func TestTCPStreamMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := metrics.NewRequests(reg)
	tcp := metrics.NewTCP(reg)
	tr := newTracer(t, &recorder{}, tracing.Config{})
	client := telemetry.New(apiSelf, tr, reqs, nil, telemetry.WithTCP(tcp))
	server := telemetry.New(telemetry.Self{Workload: "db-1", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/db"}, tr, reqs, nil, telemetry.WithTCP(tcp))
	dbEP := &lb.Endpoint{Addr: "127.0.0.10:5432", Workload: "db-1.shop", Identity: "spiffe://cluster.local/ns/shop/sa/db"}

	// Outbound: a stream that moves 5 bytes up and 28 down.
	r := httptest.NewRequest(http.MethodConnect, "10.0.0.7:5432", nil)
	w, _, rq := client.Outbound(httptest.NewRecorder(), r)
	rq.Note("tcp", "outbound|5432||db.shop.svc.cluster.local", nil, "")
	up := httptest.NewRequest(http.MethodConnect, "10.0.0.7:5432", nil)
	rq.NoteTunnel(up, dbEP)
	if got := up.Header.Get(mesh.HeaderSourceWorkload); got != "api.shop" {
		t.Errorf("tunnel request source workload %q", got)
	}
	s := rq.OpenTCP()
	if s == nil || rq.OpenTCP() != s {
		t.Fatal("OpenTCP did not return one series")
	}
	var sink bytes.Buffer
	if _, err := s.CountReceived(&sink).Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	s.AddSent(28)
	w.WriteHeader(http.StatusOK)
	client.Finish(rq)

	// Inbound: refused before it carried anything.
	r2 := httptest.NewRequest(http.MethodConnect, "10.0.0.7:5432", nil)
	w2, _, rq2 := server.Inbound(httptest.NewRecorder(), r2)
	rq2.Note("", "", nil, "spiffe://cluster.local/ns/shop/sa/api")
	rq2.NoteService("db.shop.svc.cluster.local")
	w2.WriteHeader(http.StatusForbidden)
	server.Finish(rq2)

	out := []string{"outbound", "api", "shop", apiSelf.Identity, "db-1", "shop", "db.shop.svc.cluster.local", dbEP.Identity}
	in := []string{"inbound", "", "", apiSelf.Identity, "db-1", "shop", "db.shop.svc.cluster.local", dbEP.Identity}
	for _, tc := range []struct {
		name string
		v    *prometheus.CounterVec
		lv   []string
		want float64
	}{
		{"outbound opened", tcp.Opened, out, 1},
		{"outbound closed", tcp.Closed, out, 1},
		{"outbound received", tcp.Received, out, 5},
		{"outbound sent", tcp.Sent, out, 28},
		{"inbound opened", tcp.Opened, in, 1},
		{"inbound closed", tcp.Closed, in, 1},
		{"inbound received", tcp.Received, in, 0},
		{"inbound sent", tcp.Sent, in, 0},
	} {
		if got := testutil.ToFloat64(tc.v.WithLabelValues(tc.lv...)); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "weft_requests_total"); err != nil || n != 0 {
		t.Errorf("CONNECTs made %d request series (%v), want 0", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, mesh.MetricTCPOpened); err != nil || n != 2 {
		t.Errorf("%d opened series (%v), want 2", n, err)
	}
}

// TestInboundDestinationService: the inbound request series and the
// server span carry the service the handler noted (and the span the HTTP
// semantic-convention attributes).
func TestInboundDestinationService(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := metrics.NewRequests(reg)
	rec := &recorder{}
	tr := newTracer(t, rec, tracing.Config{Endpoint: "x", Rate: 1, ServiceName: "order.shop"})
	o := telemetry.New(telemetry.Self{Workload: "order-1", Namespace: "shop", Identity: orderEP.Identity}, tr, reqs, nil)
	r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
	r.Header.Set(mesh.HeaderSourceWorkload, "api.shop")
	w, _, rq := o.Inbound(httptest.NewRecorder(), r)
	rq.Note("default", "inbound|8080||", &lb.Endpoint{Addr: "127.0.0.9:8080"}, apiSelf.Identity)
	rq.NoteService("order.shop.svc.cluster.local")
	w.WriteHeader(http.StatusOK)
	o.Finish(rq)
	spans := waitSpans(t, rec, 1)
	for k, want := range map[string]string{
		"url.path": "/x", "server.address": "order.shop:8080", "network.protocol.version": "1.1",
		"weft.destination.service": "order.shop.svc.cluster.local", "weft.source.identity": apiSelf.Identity,
	} {
		if v, _ := attr(spans[0], k); v.AsString() != want {
			t.Errorf("server span %s = %q, want %q", k, v.AsString(), want)
		}
	}
	lv := []string{"inbound", "api", "shop", apiSelf.Identity, "order-1", "shop", "order.shop.svc.cluster.local", orderEP.Identity, "200"}
	if got := testutil.ToFloat64(reqs.Total.WithLabelValues(lv...)); got != 1 {
		t.Errorf("inbound series %v = %v, want 1", lv, got)
	}

	// Refused before routing: the verified peer still labels it; a
	// plaintext peer's claimed workload does not.
	for _, tc := range []struct{ peer, wantWL, wantNS string }{
		{apiSelf.Identity, "api", "shop"},
		{"", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://order.shop:8080/x", nil)
		r.Header.Set(mesh.HeaderSourceWorkload, "api.shop")
		w, _, rq := o.Inbound(httptest.NewRecorder(), r)
		rq.NotePeer(tc.peer)
		w.WriteHeader(http.StatusForbidden)
		o.Finish(rq)
		lv := []string{"inbound", tc.wantWL, tc.wantNS, tc.peer, "order-1", "shop", "", orderEP.Identity, "403"}
		if got := testutil.ToFloat64(reqs.Total.WithLabelValues(lv...)); got != 1 {
			t.Errorf("refused request from %q: series %v = %v, want 1", tc.peer, lv, got)
		}
	}
}
