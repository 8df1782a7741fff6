package outbound_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// reusedTransport answers every try with the same response, whose body
// is rewound for each request, so that it allocates nothing itself.
type reusedTransport struct {
	resp *http.Response
	body rewindBody
	// needs is what NeedsEndpoint answers: whether the dialers read the
	// endpoint from the request context (transport.Mesh does only for an
	// endpoint whose connect timeout is not its default).
	needs bool
}

func (t *reusedTransport) NeedsEndpoint(*lb.Endpoint) bool { return t.needs }

func newReusedTransport() *reusedTransport {
	t := &reusedTransport{body: rewindBody{data: []byte("ok")}}
	t.resp = &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}}, Body: &t.body, ContentLength: 2}
	return t
}

func (t *reusedTransport) RoundTrip(*http.Request, *lb.Endpoint) (*http.Response, error) {
	t.body.off = 0
	return t.resp, nil
}

type rewindBody struct {
	data []byte
	off  int
}

func (b *rewindBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (*rewindBody) Close() error { return nil }

// reusedWriter is a ResponseWriter whose header map is emptied, not
// replaced, between requests.
type reusedWriter struct {
	h    http.Header
	code int
}

func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) WriteHeader(code int)        { w.code = code }
func (w *reusedWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestForwardAllocations bounds what the outbound handler allocates for
// a plain request with telemetry on, with and without the resilience
// config (request metrics, tracing configured off), its transport and
// writer allocating nothing: the try's request copy, which holds its own
// path-only URL in the same allocation (the prepared request and its URL
// stay on the stack), and, only when the transport's dialers need it
// (an endpoint whose connect timeout is not their default), a context
// value carrying the endpoint. The telemetry record, the picker's context
// and the authorization request are recycled, and the record reaches the
// handler without a context value or another request copy (each of those
// was two allocations more per request).
func TestForwardAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, tc := range []struct {
		name      string
		resilient bool
		needs     bool
		bound     float64
	}{
		{"no resilience config", false, false, 1},
		{"no resilience config, endpoint in the context", false, true, 2},
		// The contract's default retries (nothing buffered for a GET),
		// breakers, tracked limits and retry budget add one: gobreaker's
		// outcome callback.
		{"resilience on", true, false, 2},
		{"resilience on, endpoint in the context", true, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/api"},
				tracing.New(slog.New(slog.DiscardHandler)), metrics.NewRequests(prometheus.NewRegistry()), nil)
			tr := newReusedTransport()
			tr.needs = tc.needs
			h := outbound.NewHandler(tables{table(t, tc.resilient)}, tr, slog.New(slog.DiscardHandler), outbound.WithTelemetry(obs))
			req := httptest.NewRequest(http.MethodGet, "http://payment.shop:8080/pay", nil)
			w := &reusedWriter{h: http.Header{}}
			serve := func() {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, req)
			}
			serve() // the metric series and the pools
			if w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
			if n := testing.AllocsPerRun(200, serve); n > tc.bound {
				t.Errorf("outbound handler: %.1f allocations per request, want at most %.0f", n, tc.bound)
			}
			if w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
		})
	}
}
