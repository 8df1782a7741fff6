package outbound_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/outbound"
)

// heldTransport holds every try until release is closed.
type heldTransport struct {
	started atomic.Int64
	release chan struct{}
}

func (h *heldTransport) RoundTrip(req *http.Request, _ *lb.Endpoint) (*http.Response, error) {
	h.started.Add(1)
	select {
	case <-h.release:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: req}, nil
}

// TestClusterLimitsFailFast: with n requests held in flight, the next one
// is answered 503 at once, without a try, with x-weft-overloaded naming
// the limit; once the held ones finish, requests pass again.
func TestClusterLimitsFailFast(t *testing.T) {
	u := wrapperspb.UInt32
	tests := []struct {
		name   string
		th     *cluster.CircuitBreakers_Thresholds
		held   int
		reason string
	}{
		{"max_requests", &cluster.CircuitBreakers_Thresholds{MaxRequests: u(2)}, 2, "max_requests"},
		{"max_pending_requests", &cluster.CircuitBreakers_Thresholds{MaxPendingRequests: u(1)}, 1, "max_pending_requests"},
		// Three tunnel endpoints picked round robin: the second request
		// needs a second connection.
		{"max_connections", &cluster.CircuitBreakers_Thresholds{MaxConnections: u(1)}, 1, "max_connections"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.th.Priority = core.RoutingPriority_DEFAULT
			ht := &heldTransport{release: make(chan struct{})}
			h := outbound.NewHandler(tables{tableWith(t, false, tc.th)}, ht, slog.New(slog.DiscardHandler))
			serve := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodGet, "http://payment.shop:8080/pay", nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w
			}
			var wg sync.WaitGroup
			codes := make([]int, tc.held)
			for i := range tc.held {
				wg.Go(func() { codes[i] = serve().Code })
			}
			for deadline := time.Now().Add(5 * time.Second); ht.started.Load() < int64(tc.held); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d held requests started", ht.started.Load(), tc.held)
				}
			}
			w := serve()
			if w.Code != http.StatusServiceUnavailable || w.Header().Get(mesh.HeaderOverloaded) != tc.reason {
				t.Errorf("over the limit: %d %s=%q %q, want 503 %q", w.Code, mesh.HeaderOverloaded, w.Header().Get(mesh.HeaderOverloaded), w.Body, tc.reason)
			}
			if got := ht.started.Load(); got != int64(tc.held) {
				t.Errorf("the refused request was tried (%d tries, want %d)", got, tc.held)
			}
			close(ht.release)
			wg.Wait()
			for i, c := range codes {
				if c != http.StatusOK {
					t.Errorf("held request %d: %d", i, c)
				}
			}
			if w := serve(); w.Code != http.StatusOK {
				t.Errorf("after the held requests finished: %d %q", w.Code, w.Body)
			}
		})
	}
}
