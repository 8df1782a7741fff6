package outbound_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/internal/allocfree"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/telemetry"
)

// TestForwardAllocations bounds what the outbound handler allocates for
// a plain request with telemetry on, with and without the resilience
// config (request metrics, tracing configured off), its transport and
// writer allocating nothing: the try's request copy, which holds its own
// path-only URL in the same allocation (the prepared request and its URL
// stay on the stack), unless the transport releases it (then it is
// recycled for the next try), and, only when the transport's dialers
// need it (an endpoint whose connect timeout is not their default), a
// context value carrying the endpoint. The telemetry record, the
// picker's context and the authorization request are recycled, and the
// record reaches the handler without a context value or another request
// copy (each of those was two allocations more per request). The handler
// gives the server's request back (ServeRecycle) exactly when the
// transport released every try.
func TestForwardAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, tc := range []struct {
		name      string
		resilient bool
		needs     bool
		releases  bool
		bound     float64
	}{
		{"no resilience config", false, false, false, 1},
		{"no resilience config, released", false, false, true, 0},
		{"no resilience config, endpoint in the context", false, true, false, 2},
		{"no resilience config, endpoint in the context, released", false, true, true, 1},
		// The contract's default retries (nothing buffered for a GET),
		// breakers, tracked limits and retry budget add one: gobreaker's
		// outcome callback.
		{"resilience on", true, false, false, 2},
		{"resilience on, released", true, false, true, 1},
		{"resilience on, endpoint in the context", true, true, false, 3},
		{"resilience on, endpoint in the context, released", true, true, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := telemetry.New(telemetry.Self{Workload: "api", Namespace: "shop", Identity: "spiffe://cluster.local/ns/shop/sa/api"},
				tracing.New(slog.New(slog.DiscardHandler)), metrics.NewRequests(prometheus.NewRegistry()), nil)
			tr := allocfree.NewTransport(false)
			tr.Needs, tr.Releases = tc.needs, tc.releases
			h := outbound.NewHandler(tables{table(t, tc.resilient)}, tr, slog.New(slog.DiscardHandler), outbound.WithTelemetry(obs))
			req := httptest.NewRequest(http.MethodGet, "http://payment.shop:8080/pay", nil)
			w := allocfree.NewWriter()
			released := !tc.releases
			serve := func() {
				w.Reset()
				released = h.ServeRecycle(w, req)
			}
			allocfree.Bound(t, "outbound handler", w, serve, tc.bound)
			if released != tc.releases {
				t.Errorf("ServeRecycle gave the request back: %v, want %v (the transport releases it: %v)", released, tc.releases, tc.releases)
			}
		})
	}
}
