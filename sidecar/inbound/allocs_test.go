package inbound

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/internal/allocfree"
	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

type fixedTable struct{ t *router.Table }

func (f fixedTable) Load() *router.Table { return f.t }

// TestForwardToAppAllocations bounds what the inbound handler allocates
// for a plain request to the app with telemetry on (request metrics,
// tracing configured off), its transport and writer allocating nothing:
// the app request's copy, which holds its path-only URL in the same
// allocation, and, only when the transport's dialer needs it (an endpoint
// whose connect timeout is not its default), a context value carrying the
// endpoint (the URL and the context value were two more before). The
// telemetry record reaches the handler without a context value or another
// request copy, the authorization request is recycled, and the listener's
// address is read without formatting it (together seven allocations more
// per request before). A transport that releases the request (a request
// without a body on an HTTP/1.1 pool) gets a recycled copy, and the
// handler gives the server's request back (ServeRecycle) then only.
func TestForwardToAppAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	const port = 8080
	s, err := xdsclient.NewSnapshot([]*listener.Listener{xdstest.InboundListener("10.0.0.9", port)}, nil,
		[]*cluster.Cluster{xdstest.InboundCluster("127.0.0.1", port)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := router.Compile(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		needs    bool
		releases bool
		bound    float64
	}{
		{"endpoint not in the context", false, false, 1},
		{"endpoint not in the context, released", false, true, 0},
		{"endpoint in the context", true, false, 2},
		{"endpoint in the context, released", true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := allocfree.NewTransport(tc.needs)
			tr.Releases = tc.releases
			obs := telemetry.New(telemetry.Self{Workload: "payment", Namespace: "shop"},
				tracing.New(slog.New(slog.DiscardHandler)), metrics.NewRequests(prometheus.NewRegistry()), nil)
			h := NewHandler(fixedTable{tbl}, tr, slog.New(slog.DiscardHandler), WithTelemetry(obs))

			ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: mesh.PortInbound})
			req := httptest.NewRequest(http.MethodGet, "/pay", nil).WithContext(ctx)
			req.Host = "payment.shop:8080"
			req.RemoteAddr = "10.0.0.7:40000"
			targetKey, target := http.CanonicalHeaderKey(mesh.HeaderTargetPort), []string{strconv.Itoa(port)}
			w := allocfree.NewWriter()
			released := !tc.releases
			serve := func() {
				req.Header[targetKey] = target // the handler removes it
				w.Reset()
				released = h.ServeRecycle(w, req)
			}
			allocfree.Bound(t, "inbound handler", w, serve, tc.bound)
			if released != tc.releases {
				t.Errorf("ServeRecycle gave the request back: %v, want %v", released, tc.releases)
			}
		})
	}
}
