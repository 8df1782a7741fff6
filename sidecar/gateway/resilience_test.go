package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/egress"
)

// serveSite runs an external HTTP site with handler on 127.0.0.1 and
// returns its port.
func serveSite(t *testing.T, handler http.HandlerFunc) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return uint32(ln.Addr().(*net.TCPAddr).Port) //nolint:gosec // G115: a port.
}

// resilient is an HTTP destination on 127.0.0.1:port with the Envoy JSON
// of a retry policy, limits and outlier detection, allowed to order.
func resilient(name string, port uint32, timeout, retryPolicy, breakers, outlier string) egress.Destination {
	d := egress.Destination{
		Name: "shop/" + name, Hosts: []string{name + ".example.test"}, Port: port, Protocol: egress.ProtocolHTTP,
		Resolution: egress.ResolutionStatic, Endpoints: []string{"127.0.0.1"}, Rules: []egress.Rule{{Principals: []string{order}}},
		Timeout: timeout, RetryPolicy: json.RawMessage(retryPolicy),
	}
	if breakers != "" {
		d.CircuitBreakers = json.RawMessage(breakers)
	}
	if outlier != "" {
		d.OutlierDetection = json.RawMessage(outlier)
	}
	return d
}

// The resilience policies of the mesh (retry, budget, timeout, breaker)
// apply to the gateway's HTTP destinations.
func TestResilience(t *testing.T) {
	// flaky resets the connection of the first fails requests per path.
	var flakyHits atomic.Int64
	failFirst := map[string]int64{"/transient": 2, "/budget": 1}
	var seen [2]atomic.Int64
	flaky := serveSite(t, func(w http.ResponseWriter, r *http.Request) {
		flakyHits.Add(1)
		i := 0
		if r.URL.Path == "/budget" {
			i = 1
		}
		if seen[i].Add(1) <= failFirst[r.URL.Path] {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.(*net.TCPConn).SetLinger(0) // RST: a reset, not a clean close
				_ = c.Close()
			}
			return
		}
		fmt.Fprint(w, "ok")
	})
	hanging := serveSite(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	var brokenHits atomic.Int64
	broken := serveSite(t, func(w http.ResponseWriter, _ *http.Request) {
		brokenHits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	const retry2 = `{"retryOn":"connect-failure,refused-stream,reset","numRetries":2,"retryBackOff":{"baseInterval":"0.001s","maxInterval":"0.010s"}}`
	e := start(t,
		resilient("flaky", flaky, "0s", retry2, "", ""),
		// maxRetries 0: no retry may ever be in flight.
		resilient("nobudget", flaky, "0s", retry2, `{"thresholds":[{"maxRetries":0}]}`, ""),
		resilient("hanging", hanging, "0.300s", retry2, "", ""),
		resilient("broken", broken, "0s", `{"retryOn":"connect-failure","numRetries":0}`, "",
			`{"consecutive5xx":2,"enforcingConsecutive5xx":100,"baseEjectionTime":"30s","maxEjectionPercent":50,"interval":"5s"}`),
	)
	c := client(t, order)
	host := func(name string, port uint32) string { return fmt.Sprintf("%s.example.test:%d", name, port) }
	get := func(t *testing.T, h, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+e.gw+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = h
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(data)
	}

	t.Run("transient resets retried", func(t *testing.T) {
		before := flakyHits.Load()
		code, body := get(t, host("flaky", flaky), "/transient")
		if code != http.StatusOK || body != "ok" {
			t.Fatalf("flaky host: %d %q, want 200 ok after two retries", code, body)
		}
		if n := flakyHits.Load() - before; n != 3 {
			t.Errorf("the site saw %d tries, want 3", n)
		}
		st := e.metrics.Stats("egress|shop/flaky:" + fmt.Sprint(flaky))
		if st == nil || st.Retries.Load() != 2 {
			t.Errorf("egress|shop/flaky retries = %v, want 2", st)
		}
		if !strings.Contains(e.log.String(), `"attempts":3`) {
			t.Errorf("no access-log line with attempts 3:\n%s", e.log.String())
		}
	})
	t.Run("retry budget refuses", func(t *testing.T) {
		before := flakyHits.Load()
		code, body := get(t, host("nobudget", flaky), "/budget")
		if code != http.StatusBadGateway {
			t.Fatalf("no retry budget: %d %q, want 502 (the one reset, not retried)", code, body)
		}
		if n := flakyHits.Load() - before; n != 1 {
			t.Errorf("the site saw %d tries, want 1", n)
		}
		st := e.metrics.Stats("egress|shop/nobudget:" + fmt.Sprint(flaky))
		if st == nil || st.RetryBudgetExhausted.Load() != 1 || st.Retries.Load() != 0 {
			t.Errorf("egress|shop/nobudget: %+v, want 1 retry refused by the budget, 0 made", st)
		}
	})
	t.Run("hanging host times out", func(t *testing.T) {
		start := time.Now()
		code, body := get(t, host("hanging", hanging), "/")
		if took := time.Since(start); code != http.StatusGatewayTimeout || took > 3*time.Second {
			t.Fatalf("hanging host: %d %q after %v, want 504 after the 300ms route timeout", code, body, took)
		}
		if !strings.Contains(e.log.String(), `"reason":"timeout"`) {
			t.Error("no timeout access-log line")
		}
	})
	t.Run("breaker ejects a failing destination", func(t *testing.T) {
		for i := range 2 {
			if code, _ := get(t, host("broken", broken), "/"); code != http.StatusInternalServerError {
				t.Fatalf("try %d: %d, want the site's 500", i, code)
			}
		}
		before := brokenHits.Load()
		code, body := get(t, host("broken", broken), "/")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "ejected") {
			t.Errorf("after 2 consecutive 500s: %d %q, want 503 ejected", code, body)
		}
		if n := brokenHits.Load() - before; n != 0 {
			t.Errorf("an ejected destination was sent %d requests", n)
		}
	})
}

// A request body of unknown length (a stream) goes to the external host as
// the client sends it, retry policy or not: the gateway keeps a copy for
// retries instead of reading the body to its end before the first try,
// which held a bidirectional stream (whose client sends more only after an
// answer) until its deadline.
func TestStreamedBodyNotHeldForRetries(t *testing.T) {
	gotFirst := make(chan struct{})
	site := serveSite(t, func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 4)
		if _, err := io.ReadFull(r.Body, first); err != nil || string(first) != "ping" {
			http.Error(w, fmt.Sprintf("first message %q, %v", first, err), http.StatusBadRequest)
			return
		}
		close(gotFirst)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "pong %d", len(rest))
	})
	const retry2 = `{"retryOn":"connect-failure,refused-stream,reset","numRetries":2,"retryBackOff":{"baseInterval":"0.001s","maxInterval":"0.010s"}}`
	e := start(t, resilient("stream", site, "0s", retry2, "", ""))
	c := client(t, order)

	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+e.gw+"/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fmt.Sprintf("stream.example.test:%d", site)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	if _, err := pw.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gotFirst:
	case res := <-done:
		t.Fatalf("the request ended before the site read its first message: %+v", res)
	case <-time.After(4 * time.Second):
		t.Fatal("the site did not get the first message while the client's body was open: the gateway held the stream")
	}
	if _, err := pw.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	res := <-done
	if res.err != nil || res.code != http.StatusOK || res.body != "pong 4" {
		t.Fatalf("streamed request: %+v, want 200 %q", res, "pong 4")
	}
}
