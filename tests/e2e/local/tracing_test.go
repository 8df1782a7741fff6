package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
	"github.com/weftmesh/weft/tests/jaegerharness"
)

// tracingExtra adds api-gateway (calling order) and the mesh ConfigMap
// that points every sidecar at Jaeger.
func tracingExtra(p meshParams, otlp string, rate string) string {
	return tracingExtraB3(p, otlp, rate, false)
}

// tracingExtraB3 is tracingExtra with B3 emitted (b3) or not.
func tracingExtraB3(p meshParams, otlp string, rate string, b3 bool) string {
	return meshConfigExtra(p, otlp, rate, b3, "{enabled: true}")
}

// meshConfigExtra is tracingExtraB3 with the ConfigMap's accessLog value.
func meshConfigExtra(p meshParams, otlp string, rate string, b3 bool, accessLog string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: api-gateway
  namespace: shop
spec:
  selector:
    app: api-gateway
  ports:
    - name: http
      port: 8080
      targetPort: http
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: api-gateway-1
  namespace: shop
  labels:
    app: api-gateway
  annotations:
    local.weft.dev/command: >-
      {{.BinDir}}/shop --role=api-gateway --instance={{.Name}} --listen={{.Address}}:{{.Port "http"}} --proxy={{.ProxyURL}}
spec:
  address: %s
  serviceAccount: api-gateway
  ports:
    - name: http
      port: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: weft-mesh-config
  namespace: weft-system
data:
  mesh: |
    tracing: {endpoint: "%s", samplingRate: %s, b3: %t}
    accessLog: %s
`, p.IP(15), otlp, rate, b3, accessLog)
}

func newTraceParent(sampled bool) (traceID, header string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	traceID = hex.EncodeToString(b[:16])
	flags := "00"
	if sampled {
		flags = "01"
	}
	return traceID, "00-" + traceID + "-" + hex.EncodeToString(b[16:]) + "-" + flags
}

func (e *env) getWithHeader(ctx context.Context, url, k, v string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if k != "" {
		req.Header.Set(k, v)
	}
	return e.client.Do(req)
}

// TestTracingAcrossTheMesh: one request to api-gateway is one trace in a
// real Jaeger with the client and server spans of every hop (client ->
// api-gateway -> order -> payment and inventory), linked parent to child,
// with verified identities; then a sampling change pushed at run time
// takes effect.
func TestTracingAcrossTheMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Jaeger build")
	}
	p := meshParams{Base: randomBase(), Payment2: "absent"}
	j := jaegerharness.Start(t, p.IP(200))
	p.Extra = tracingExtra(p, j.OTLPHTTP(), "1")
	e := startSecureMesh(t, p)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	url := "http://api-gateway.shop:8080/checkout"
	traceID, tp := newTraceParent(true)
	for {
		resp, err := e.getWithHeader(ctx, url, "traceparent", tp)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("api-gateway never answered 200: %v", err)
		}
		traceID, tp = newTraceParent(true)
		time.Sleep(100 * time.Millisecond)
	}

	// Every sidecar exports within its batch interval; wait for all hops.
	want := map[string]bool{ // "<service>/<kind>" seen
		"client.shop/client": false, "api-gateway.shop/server": false, "api-gateway.shop/client": false,
		"order.shop/server": false, "order.shop/client": false, "payment.shop/server": false, "inventory.shop/server": false,
	}
	var tr jaegerharness.Trace
	for {
		var err error
		tr, err = j.Trace(ctx, traceID)
		if err == nil {
			for k := range want {
				want[k] = false
			}
			for _, s := range tr.Spans {
				want[tr.Processes[s.ProcessID].ServiceName+"/"+s.Tag("span.kind")] = true
			}
			all := true
			for _, ok := range want {
				all = all && ok
			}
			if all {
				break
			}
		} else if !errors.Is(err, jaegerharness.ErrNotFound) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("trace %s incomplete in Jaeger: %v (spans %d)", traceID, want, len(tr.Spans))
		}
		time.Sleep(200 * time.Millisecond)
	}
	byID := map[string]jaegerharness.Span{}
	for _, s := range tr.Spans {
		if s.TraceID != traceID {
			t.Errorf("span %s in trace %s", s.SpanID, s.TraceID)
		}
		byID[s.SpanID] = s
	}
	svc := func(s jaegerharness.Span) string { return tr.Processes[s.ProcessID].ServiceName }
	for _, s := range tr.Spans {
		t.Logf("span %s parent %s %s/%s %s src=%s dst=%s", s.SpanID, s.Parent(), svc(s), s.Tag("span.kind"), s.OperationName, s.Tag("weft.source.identity"), s.Tag("weft.destination.identity"))
	}
	// Each server span's parent is a client span of the caller's sidecar,
	// with the caller's verified identity.
	callers := map[string]string{"api-gateway.shop": "client.shop", "order.shop": "api-gateway.shop", "payment.shop": "order.shop", "inventory.shop": "order.shop"}
	for _, s := range tr.Spans {
		if s.Tag("span.kind") != "server" {
			continue
		}
		parent, ok := byID[s.Parent()]
		if !ok {
			t.Errorf("%s server span %s: parent %q not in the trace", svc(s), s.SpanID, s.Parent())
			continue
		}
		if parent.Tag("span.kind") != "client" || svc(parent) != callers[svc(s)] {
			t.Errorf("%s server span's parent is %s/%s, want %s/client", svc(s), svc(parent), parent.Tag("span.kind"), callers[svc(s)])
		}
		caller := strings.TrimSuffix(callers[svc(s)], ".shop")
		if got, want := s.Tag("weft.source.identity"), "spiffe://cluster.local/ns/shop/sa/"+caller; got != want {
			t.Errorf("%s server span: source identity %q, want %q", svc(s), got, want)
		}
		if got := parent.Tag("weft.destination.identity"); got != s.Tag("weft.destination.identity") || got == "" {
			t.Errorf("%s: client span names destination %q, server span %q", svc(s), got, s.Tag("weft.destination.identity"))
		}
	}
	// The client span of the first hop continues the caller's context.
	for _, s := range tr.Spans {
		if svc(s) == "client.shop" && s.Parent() != tp[36:52] {
			t.Errorf("client span parent %q, want the incoming %q", s.Parent(), tp[36:52])
		}
	}
	// order-1's access log: one JSON line per request of this trace — its
	// inbound request and its two outbound ones — with the contract's
	// fields, each naming the span it belongs to.
	checkAccessLog(t, e, "order-1", traceID, func(kind, service string) map[string]bool {
		ids := map[string]bool{}
		for _, s := range tr.Spans {
			if svc(s) == service && s.Tag("span.kind") == kind {
				ids[s.SpanID] = true
			}
		}
		return ids
	})

	// Sampling 0 pushed at run time: a new root is no longer sampled.
	p.Extra = tracingExtra(p, j.OTLPHTTP(), "0")
	e.writeMesh(t, p)
	for {
		r, _, err := e.get(ctx, url)
		if err == nil && strings.HasSuffix(r.Trace["traceparent"], "-00") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sampling 0 not in effect: last traceparent %q, err %v", r.Trace["traceparent"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Unsampled roots never reach Jaeger: a sampled marker request sent
	// after them (its caller's decision is followed at rate 0) arrives
	// complete, and every sidecar exports in order, so by then any span of
	// the earlier traces would be there too.
	var unsampled []string
	for range 5 {
		r, _, err := e.get(ctx, url)
		if err != nil || !strings.HasSuffix(r.Trace["traceparent"], "-00") || len(r.Trace["traceparent"]) != 55 {
			t.Fatalf("rate 0: traceparent %q, err %v", r.Trace["traceparent"], err)
		}
		unsampled = append(unsampled, r.Trace["traceparent"][3:35])
	}
	marker, markerTP := newTraceParent(true)
	if resp, err := e.getWithHeader(ctx, url, "traceparent", markerTP); err != nil {
		t.Fatal(err)
	} else {
		_ = resp.Body.Close()
	}
	for {
		mt, err := j.Trace(ctx, marker)
		if err == nil && len(mt.Spans) >= 8 {
			break
		}
		if err != nil && !errors.Is(err, jaegerharness.ErrNotFound) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("sampled marker trace %s at rate 0 never complete in Jaeger (%d spans)", marker, len(mt.Spans))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, id := range unsampled {
		if ut, err := j.Trace(ctx, id); !errors.Is(err, jaegerharness.ErrNotFound) {
			t.Errorf("unsampled trace %s is in Jaeger (%d spans, err %v)", id, len(ut.Spans), err)
		}
	}
	// And back to 1.
	p.Extra = tracingExtra(p, j.OTLPHTTP(), "1")
	e.writeMesh(t, p)
	for {
		r, _, err := e.get(ctx, url)
		if err == nil && strings.HasSuffix(r.Trace["traceparent"], "-01") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sampling 1 not in effect: last traceparent %q, err %v", r.Trace["traceparent"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTracePropagationConversions: a B3 context (single or multi header)
// sent by the client continues as W3C traceparent into the apps, with no
// B3 left; with b3 pushed at run time a W3C context continues as both
// W3C and B3 (single and multi). Every hop keeps the trace id and the
// sampling decision.
func TestTracePropagationConversions(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "absent"}
	p.Extra = tracingExtraB3(p, p.IP(201)+":4318", "0", false) // nothing listens: spans dropped
	e := startSecureMesh(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	url := "http://api-gateway.shop:8080/checkout"
	// replies returns the trace headers api-gateway and order received.
	replies := func(in http.Header) (gw, order map[string]string, err error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header = in
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		var r app.Reply
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusOK || len(r.Calls) == 0 || r.Calls[0].Reply == nil {
			return nil, nil, fmt.Errorf("%s: %+v", resp.Status, r)
		}
		return r.Trace, r.Calls[0].Reply.Trace, nil
	}
	b3Keys := []string{"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-parentspanid", "x-b3-flags"}
	for {
		if _, _, err := replies(http.Header{}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mesh never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	single, _ := newTraceParent(true)
	multi, _ := newTraceParent(true)
	for _, tc := range []struct {
		name    string
		in      http.Header
		traceID string
	}{
		{"b3 single in", http.Header{"B3": {single + "-00f067aa0ba902b7-1"}}, single},
		{"b3 multi in", http.Header{"X-B3-Traceid": {multi}, "X-B3-Spanid": {"00f067aa0ba902b7"}, "X-B3-Sampled": {"1"}}, multi},
	} {
		gw, order, err := replies(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for who, h := range map[string]map[string]string{"api-gateway": gw, "order": order} {
			if !strings.HasPrefix(h["traceparent"], "00-"+tc.traceID+"-") {
				t.Errorf("%s: %s received traceparent %q, want trace %s", tc.name, who, h["traceparent"], tc.traceID)
			}
			for _, k := range b3Keys {
				if h[k] != "" {
					t.Errorf("%s: %s received %s=%q with b3 off", tc.name, who, k, h[k])
				}
			}
			// The sampled flag is followed (the rate is 0 here).
			if !strings.HasSuffix(h["traceparent"], "-01") {
				t.Errorf("%s: %s received traceparent %q, want sampled (parent-based)", tc.name, who, h["traceparent"])
			}
		}
	}

	// B3 on, pushed at run time: W3C in, W3C and B3 out.
	p.Extra = tracingExtraB3(p, p.IP(201)+":4318", "0", true)
	e.writeMesh(t, p)
	traceID, tp := newTraceParent(true)
	var gw, order map[string]string
	for {
		var err error
		gw, order, err = replies(http.Header{"Traceparent": {tp}})
		if err == nil && gw["x-b3-traceid"] != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("b3 never emitted: %v %v", gw, err)
		}
		time.Sleep(100 * time.Millisecond)
		traceID, tp = newTraceParent(true)
	}
	for who, h := range map[string]map[string]string{"api-gateway": gw, "order": order} {
		sp := strings.Split(h["traceparent"], "-")
		if len(sp) != 4 || sp[1] != traceID || sp[3] != "01" {
			t.Errorf("%s: traceparent %q, want trace %s sampled", who, h["traceparent"], traceID)
			continue
		}
		if h["x-b3-traceid"] != traceID || h["x-b3-spanid"] != sp[2] || h["x-b3-sampled"] != "1" {
			t.Errorf("%s: B3 multi %q/%q/%q, want %s/%s/1", who, h["x-b3-traceid"], h["x-b3-spanid"], h["x-b3-sampled"], traceID, sp[2])
		}
		if !strings.HasPrefix(h["b3"], traceID+"-"+sp[2]+"-1") {
			t.Errorf("%s: B3 single %q, want %s-%s-1", who, h["b3"], traceID, sp[2])
		}
	}
}

// TestTracingCollectorDown: tracing pointed at a collector that is not
// there, or that accepts connections and never answers (slow): every
// request still succeeds, its latency stays within noise of the same
// requests with tracing off (measured right after, same mesh), and the
// spans that could not be exported are counted as dropped.
func TestTracingCollectorDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow bool
	}{{"down", false}, {"slow", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := meshParams{Base: randomBase(), Payment2: "absent"}
			collector := p.IP(201) + ":4318" // nothing listens there
			if tc.slow {
				ln, err := net.Listen("tcp", collector)
				if err != nil {
					t.Fatal(err)
				}
				var held []net.Conn // accepted, never read or answered
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						held = append(held, c)
					}
				}()
				t.Cleanup(func() {
					_ = ln.Close()
					<-done
					for _, c := range held {
						_ = c.Close()
					}
				})
			}
			p.Extra = tracingExtra(p, collector, "1")
			e := startSecureMesh(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			url := "http://api-gateway.shop:8080/checkout"
			for {
				if r, _, err := e.get(ctx, url); err == nil && strings.HasSuffix(r.Trace["traceparent"], "-01") {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("mesh never served a sampled request")
				}
				time.Sleep(100 * time.Millisecond)
			}
			const n = 200
			measure := func(what string) []time.Duration {
				ds := make([]time.Duration, 0, n)
				for i := range n {
					start := time.Now()
					if _, code, err := e.get(ctx, url); err != nil || code != http.StatusOK {
						t.Fatalf("%s: request %d: %d %v", what, i, code, err)
					}
					ds = append(ds, time.Since(start))
				}
				slices.Sort(ds)
				return ds
			}
			down := measure("collector " + tc.name)

			// Drops are counted (each export fails within its 1 s timeout);
			// nothing is exported.
			ips := []string{p.IP(10), p.IP(15), p.IP(11), p.IP(12), p.IP(14)}
			sum := func(name string) float64 {
				var v float64
				for _, ip := range ips {
					s, err := series(ctx, ip, name)
					if err != nil {
						t.Fatal(err)
					}
					v += s[name]
				}
				return v
			}
			// n requests × 8 spans: client (1 client span), api-gateway
			// (server + client), order (server + 2 clients), payment and
			// inventory (a server span each).
			const spans = n * 8
			for sum("weft_tracing_spans_dropped_total") < spans {
				if ctx.Err() != nil {
					t.Fatalf("weft_tracing_spans_dropped_total = %v, want at least %d", sum("weft_tracing_spans_dropped_total"), spans)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if v := sum("weft_tracing_spans_exported_total"); v != 0 {
				t.Errorf("weft_tracing_spans_exported_total = %v with the collector %s", v, tc.name)
			}

			// The same requests with tracing off.
			p.Extra = tracingExtra(p, "", "1")
			e.writeMesh(t, p)
			for {
				if r, _, err := e.get(ctx, url); err == nil && r.Trace["traceparent"] == "" {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("tracing off never took effect")
				}
				time.Sleep(100 * time.Millisecond)
			}
			off := measure("tracing off")
			q := func(ds []time.Duration, f float64) time.Duration { return ds[int(f*float64(len(ds)-1))] }
			t.Logf("collector %s: p50 %v p90 %v max %v; tracing off: p50 %v p90 %v max %v",
				tc.name, q(down, .5), q(down, .9), down[n-1], q(off, .5), q(off, .9), off[n-1])
			// Generous for a shared, loaded CI machine (the two phases run
			// a few seconds apart): a blocking exporter would add its 1 s
			// export timeout to the requests it held, far beyond these.
			if q(down, .5) > 3*q(off, .5)+10*time.Millisecond || q(down, .9) > 5*q(off, .9)+50*time.Millisecond {
				t.Errorf("collector %s slowed requests: p50 %v / p90 %v against %v / %v with tracing off",
					tc.name, q(down, .5), q(down, .9), q(off, .5), q(off, .9))
			}
		})
	}
}

// retryExtra adds payment-bad (a payment endpoint that always answers
// 503) and a payment TrafficPolicy that retries 5xx once, with outlier
// ejection off so payment-bad keeps being picked.
func retryExtra(p meshParams) string {
	return fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-bad
  namespace: shop
  labels:
    app: payment
    serving: "yes"
  annotations:
    local.weft.dev/command: >-
      {{.BinDir}}/shop --role=payment --instance={{.Name}} --listen={{.Address}}:{{.Port "http"}} --fault-error-rate=1
spec:
  address: %s
  serviceAccount: payment
  ports:
    - name: http
      port: 8080
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: payment
  namespace: shop
spec:
  targetRef:
    name: payment
  outlierDetection:
    consecutive5xx: 0
  retry:
    attempts: 1
    retryOn: [5xx]
    backoffBase: 1ms
`, p.IP(16))
}

// TestTracingRetryAttempts: with a payment endpoint that always fails and
// a retry on 5xx, a request whose first try hits it is one trace in Jaeger
// where order's sidecar has two CLIENT spans for payment — attempt 1
// (503, error, no flag) and attempt 2 (flag retried) — each the parent of
// the SERVER span of the endpoint it reached.
func TestTracingRetryAttempts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Jaeger build")
	}
	p := meshParams{Base: randomBase(), Payment2: "absent"}
	j := jaegerharness.Start(t, p.IP(200))
	p.Extra = tracingExtra(p, j.OTLPHTTP(), "1") + "---\n" + retryExtra(p)
	e := startSecureMesh(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	url := "http://api-gateway.shop:8080/checkout"
	for {
		if _, code, err := e.get(ctx, url); err == nil && code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("api-gateway never answered 200")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Round robin over payment-1 and payment-bad: of 6 requests, about
	// half try payment-bad first; every one succeeds after the retry.
	var ids []string
	for range 6 {
		id, tp := newTraceParent(true)
		resp, err := e.getWithHeader(ctx, url, "traceparent", tp)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request failed: %s", resp.Status)
		}
		ids = append(ids, id)
	}
	isPayment := func(tr jaegerharness.Trace, s jaegerharness.Span) bool {
		return tr.Processes[s.ProcessID].ServiceName == "order.shop" && s.Tag("span.kind") == "client" &&
			s.Tag("weft.destination.service") == "payment.shop.svc.cluster.local"
	}
	for {
		for _, id := range ids {
			tr, err := j.Trace(ctx, id)
			if err != nil {
				continue
			}
			byID := map[string]jaegerharness.Span{}
			var tries []jaegerharness.Span
			for _, s := range tr.Spans {
				byID[s.SpanID] = s
				if isPayment(tr, s) {
					tries = append(tries, s)
				}
			}
			if len(tries) != 2 {
				continue
			}
			slices.SortFunc(tries, func(a, b jaegerharness.Span) int {
				return strings.Compare(a.Tag("weft.attempt"), b.Tag("weft.attempt"))
			})
			first, second := tries[0], tries[1]
			// Both tries' server spans must have arrived too.
			var servers [2]*jaegerharness.Span
			for _, s := range tr.Spans {
				if tr.Processes[s.ProcessID].ServiceName == "payment.shop" && s.Tag("span.kind") == "server" {
					for i, c := range tries {
						if s.Parent() == c.SpanID {
							servers[i] = &s
						}
					}
				}
			}
			if servers[0] == nil || servers[1] == nil {
				continue
			}
			if first.Tag("weft.attempt") != "1" || second.Tag("weft.attempt") != "2" {
				t.Errorf("attempts %q and %q, want 1 and 2", first.Tag("weft.attempt"), second.Tag("weft.attempt"))
			}
			if first.Tag("http.response.status_code") != "503" || first.Tag("error") != "true" || first.Tag("weft.response_flags") != "" {
				t.Errorf("first try: status %q error %q flags %q, want 503, true, none", first.Tag("http.response.status_code"), first.Tag("error"), first.Tag("weft.response_flags"))
			}
			if second.Tag("http.response.status_code") != "200" || second.Tag("weft.response_flags") != "retried" {
				t.Errorf("second try: status %q flags %q, want 200, retried", second.Tag("http.response.status_code"), second.Tag("weft.response_flags"))
			}
			if first.Parent() != second.Parent() || byID[first.Parent()].Tag("span.kind") != "server" {
				t.Errorf("tries have parents %q and %q, want both order's server span", first.Parent(), second.Parent())
			}
			if first.Tag("weft.upstream") == second.Tag("weft.upstream") {
				t.Errorf("both tries went to %s", first.Tag("weft.upstream"))
			}
			if servers[0].Tag("http.response.status_code") != "503" || servers[1].Tag("http.response.status_code") != "200" {
				t.Errorf("payment server spans answered %q and %q, want 503 then 200", servers[0].Tag("http.response.status_code"), servers[1].Tag("http.response.status_code"))
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no trace of %v shows a retried payment call in Jaeger", ids)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkAccessLog reads the access log lines of trace traceID from the
// sidecar log of workload wl (shop namespace): one inbound line whose
// span is that sidecar's server span, and one outbound line per call
// (payment and inventory) whose span is one of its client spans; every
// line carries the contract's fields.
func checkAccessLog(t *testing.T, e *env, wl, traceID string, spans func(kind, service string) map[string]bool) {
	t.Helper()
	w, ok := e.m.Workload(wl)
	if !ok {
		t.Fatalf("no workload %s", wl)
	}
	data, err := os.ReadFile(e.m.SidecarLogFile(w))
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{
		"time", "direction", "trace_id", "span_id", "method", "authority", "path", "protocol", "status",
		"flags", "route", "cluster", "upstream", "attempts", "source_identity", "destination_identity",
		"source_workload", "destination_workload", "bytes_received", "bytes_sent", "duration_ms", "upstream_duration_ms",
	}
	service := strings.TrimSuffix(wl, "-1") + ".shop"
	server, client := spans("server", service), spans("client", service)
	var in, out []map[string]any
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, traceID) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("access log line %q: %v", line, err)
			continue
		}
		if m["trace_id"] != traceID {
			continue
		}
		for _, f := range fields {
			if _, ok := m[f]; !ok {
				t.Errorf("access log line has no %q: %s", f, line)
			}
		}
		span, _ := m["span_id"].(string)
		switch m["direction"] {
		case "inbound":
			in = append(in, m)
			if !server[span] {
				t.Errorf("inbound line's span %s is not %s's server span: %s", span, service, line)
			}
		case "outbound":
			out = append(out, m)
			if !client[span] {
				t.Errorf("outbound line's span %s is not one of %s's client spans: %s", span, service, line)
			}
		}
	}
	if len(in) != 1 || len(out) != 2 {
		t.Fatalf("%s's access log has %d inbound and %d outbound lines of trace %s, want 1 and 2", wl, len(in), len(out), traceID)
	}
	if in[0]["status"] != float64(200) || in[0]["attempts"] != float64(1) || in[0]["source_identity"] != "spiffe://cluster.local/ns/shop/sa/api-gateway" ||
		in[0]["destination_workload"] != wl+".shop" || in[0]["cluster"] != "inbound|8080||" {
		t.Errorf("inbound line %v", in[0])
	}
	clusters := map[any]bool{}
	for _, m := range out {
		clusters[m["cluster"]] = true
		if m["status"] != float64(200) || m["attempts"] != float64(1) || m["source_identity"] != "spiffe://cluster.local/ns/shop/sa/order" {
			t.Errorf("outbound line %v", m)
		}
	}
	if !clusters["outbound|8080||payment.shop.svc.cluster.local"] || !clusters["outbound|8080||inventory.shop.svc.cluster.local"] {
		t.Errorf("outbound lines' clusters %v, want payment and inventory", clusters)
	}
}

// TestAccessLogFilterAtRunTime: every request is one access-log line on
// the sidecar; a status filter pushed at run time (accessLog.minStatus
// 400 in the mesh ConfigMap) leaves out the successes and keeps the 404s.
func TestAccessLogFilterAtRunTime(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "absent"}
	collector := p.IP(201) + ":4318" // nothing listens: spans dropped, ids still made
	p.Extra = meshConfigExtra(p, collector, "1", false, "{enabled: true}")
	e := startSecureMesh(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	w, _ := e.m.Workload("api-gateway-1")
	logFile := e.m.SidecarLogFile(w)
	// logged returns api-gateway-1's inbound access-log line of a trace.
	logged := func(traceID string) map[string]any {
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "{") || !strings.Contains(line, traceID) {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["trace_id"] == traceID && m["direction"] == "inbound" {
				return m
			}
		}
		return nil
	}
	send := func(path string) (traceID string, code int) {
		id, tp := newTraceParent(true)
		resp, err := e.getWithHeader(ctx, "http://api-gateway.shop:8080"+path, "traceparent", tp)
		if err != nil {
			return id, 0
		}
		_ = resp.Body.Close()
		return id, resp.StatusCode
	}
	waitLogged := func(id string) map[string]any {
		for {
			if m := logged(id); m != nil {
				return m
			}
			if ctx.Err() != nil {
				t.Fatalf("no access-log line for trace %s", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var ok string
	for {
		var code int
		if ok, code = send("/checkout"); code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mesh never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := waitLogged(ok); m["status"] != float64(200) || m["path"] != "/checkout" || m["source_identity"] != "spiffe://cluster.local/ns/shop/sa/client" {
		t.Errorf("access-log line %v", m)
	}

	p.Extra = meshConfigExtra(p, collector, "1", false, "{enabled: true, minStatus: 400}")
	e.writeMesh(t, p)
	// In effect once a success is left out while the 404 sent after it is
	// logged (each line is written when its request ends).
	for {
		okID, okCode := send("/checkout")
		nfID, nfCode := send("/nope")
		if okCode != http.StatusOK || nfCode != http.StatusNotFound {
			t.Fatalf("GETs answered %d and %d, want 200 and 404", okCode, nfCode)
		}
		m := waitLogged(nfID)
		if m["status"] != float64(404) {
			t.Errorf("404's line %v", m)
		}
		if logged(okID) == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("minStatus 400 never took effect: successes still logged")
		}
	}
	// And stays in effect: of 5 successes and a 404 after them, once the
	// 404's line is there, no success has one.
	var oks []string
	for range 5 {
		id, _ := send("/checkout")
		oks = append(oks, id)
	}
	id, _ := send("/nope")
	waitLogged(id)
	for _, id := range oks {
		if logged(id) != nil {
			t.Errorf("success %s logged with minStatus 400", id)
		}
	}
}
