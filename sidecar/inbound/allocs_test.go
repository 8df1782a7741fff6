package inbound

import (
	"context"
	"io"
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
	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

type fixedTable struct{ t *router.Table }

func (f fixedTable) Load() *router.Table { return f.t }

// appTransport answers every request with the same response, its body
// rewound each time, so that it allocates nothing itself.
type appTransport struct {
	resp *http.Response
	body rewindBody
	// needs is what NeedsEndpoint answers: whether the dialer reads the
	// endpoint from the request context (transport.Mesh does only for an
	// endpoint whose connect timeout is not its default).
	needs bool
}

func (t *appTransport) NeedsEndpoint(*lb.Endpoint) bool { return t.needs }

func (t *appTransport) RoundTrip(*http.Request, *lb.Endpoint) (*http.Response, error) {
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

type reusedWriter struct {
	h    http.Header
	code int
}

func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) WriteHeader(code int)        { w.code = code }
func (w *reusedWriter) Write(p []byte) (int, error) { return len(p), nil }

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
// per request before).
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
		name  string
		needs bool
		bound float64
	}{
		{"endpoint not in the context", false, 1},
		{"endpoint in the context", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &appTransport{body: rewindBody{data: []byte("ok")}, needs: tc.needs}
			tr.resp = &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}}, Body: &tr.body, ContentLength: 2}
			obs := telemetry.New(telemetry.Self{Workload: "payment", Namespace: "shop"},
				tracing.New(slog.New(slog.DiscardHandler)), metrics.NewRequests(prometheus.NewRegistry()), nil)
			h := NewHandler(fixedTable{tbl}, tr, slog.New(slog.DiscardHandler), WithTelemetry(obs))

			ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: mesh.PortInbound})
			req := httptest.NewRequest(http.MethodGet, "/pay", nil).WithContext(ctx)
			req.Host = "payment.shop:8080"
			req.RemoteAddr = "10.0.0.7:40000"
			targetKey, target := http.CanonicalHeaderKey(mesh.HeaderTargetPort), []string{strconv.Itoa(port)}
			w := &reusedWriter{h: http.Header{}}
			serve := func() {
				req.Header[targetKey] = target // the handler removes it
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, req)
			}
			serve() // the metric series and the pools
			if w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
			if n := testing.AllocsPerRun(200, serve); n > tc.bound {
				t.Errorf("inbound handler: %.1f allocations per request, want at most %.0f", n, tc.bound)
			}
			if w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
		})
	}
}
