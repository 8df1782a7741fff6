package outbound_test

import (
	"context"
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
	"github.com/weftmesh/weft/sidecar/router"
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
	// The endpoints of an mTLS cluster (xdsclient.NewSnapshot has no
	// identity to accept a transport socket with, so the test marks the
	// compiled endpoints the way the router does from one).
	withMTLS := func(tbl *router.Table) {
		m := &lb.MTLS{PeerIDs: []string{"spiffe://cluster.local/ns/shop/sa/payment"}, Key: "spiffe://cluster.local/ns/shop/sa/payment"}
		for _, cl := range tbl.Clusters {
			for _, ep := range cl.Picker.Endpoints() {
				ep.MTLS = m
			}
		}
	}
	tests := []struct {
		name   string
		th     *cluster.CircuitBreakers_Thresholds
		mtls   bool
		h2     bool // requests arrive as HTTP/2 gRPC calls
		held   int
		reason string // "" : the next request is admitted
	}{
		{"max_requests", &cluster.CircuitBreakers_Thresholds{MaxRequests: u(2)}, false, false, 2, "max_requests"},
		{"max_pending_requests", &cluster.CircuitBreakers_Thresholds{MaxPendingRequests: u(1)}, false, false, 1, "max_pending_requests"},
		// Three tunnel endpoints picked round robin: the second request
		// needs a second connection.
		{"max_connections", &cluster.CircuitBreakers_Thresholds{MaxConnections: u(1)}, false, false, 1, "max_connections"},
		// Over mTLS an HTTP/1.x request holds a pooled connection of its
		// own: the fourth request, back on the first endpoint, needs a
		// fourth connection...
		{"max_connections, HTTP/1.1 over mTLS", &cluster.CircuitBreakers_Thresholds{MaxConnections: u(3)}, true, false, 3, "max_connections"},
		// ...while gRPC calls (HTTP/2 on the hop) share each endpoint's
		// one connection.
		{"max_connections, gRPC over mTLS", &cluster.CircuitBreakers_Thresholds{MaxConnections: u(3)}, true, true, 3, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.th.Priority = core.RoutingPriority_DEFAULT
			ht := &heldTransport{release: make(chan struct{})}
			tbl := tableWith(t, false, tc.th)
			if tc.mtls {
				withMTLS(tbl)
			}
			h := outbound.NewHandler(tables{tbl}, ht, slog.New(slog.DiscardHandler))
			// serve sends one request; a held one is given up after a
			// while, so a request wrongly admitted fails instead of hanging.
			serve := func() *httptest.ResponseRecorder {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://payment.shop:8080/pay", nil)
				if tc.h2 {
					req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
					req.Header.Set("Content-Type", "application/grpc")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w
			}
			if tc.reason == "" {
				tc.held++ // the admitted one is held too
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
			if tc.reason != "" {
				w := serve()
				if w.Code != http.StatusServiceUnavailable || w.Header().Get(mesh.HeaderOverloaded) != tc.reason {
					t.Errorf("over the limit: %d %s=%q %q, want 503 %q", w.Code, mesh.HeaderOverloaded, w.Header().Get(mesh.HeaderOverloaded), w.Body, tc.reason)
				}
				if got := ht.started.Load(); got != int64(tc.held) {
					t.Errorf("the refused request was tried (%d tries, want %d)", got, tc.held)
				}
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
