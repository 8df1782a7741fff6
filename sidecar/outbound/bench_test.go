package outbound_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/transport"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// fakeTransport answers every try with status, or fails the endpoints in
// down with a connect error.
type fakeTransport struct {
	status int
	tries  atomic.Int64
	down   map[string]bool
}

// NeedsEndpoint answers as transport.Mesh does for an endpoint whose
// connect timeout is its dialers' default (the sidecar's case): no
// context layer carries the endpoint.
func (f *fakeTransport) NeedsEndpoint(*lb.Endpoint) bool { return false }

func (f *fakeTransport) RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	f.tries.Add(1)
	if f.down[ep.Addr] {
		return nil, &transport.DialError{Addr: ep.TunnelAddr, Err: errors.New("connect: connection refused")}
	}
	return &http.Response{StatusCode: f.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: req}, nil
}

type tables struct{ t *router.Table }

func (t tables) Load() *router.Table { return t.t }

// table compiles an outbound config for payment.shop:8080 with three
// endpoints; resilient adds the contract's default retry policy, outlier
// detection and circuit breakers, otherwise the route has no retry policy
// and the cluster no outlier detection.
func table(tb testing.TB, resilient bool) *router.Table {
	tb.Helper()
	return tableWith(tb, resilient, nil)
}

// tableWith is table with the cluster's circuit-breaker thresholds set to
// th when th is not nil.
func tableWith(tb testing.TB, resilient bool, th *cluster.CircuitBreakers_Thresholds) *router.Table {
	tb.Helper()
	return tableOf(tb, resilient, th,
		xdstest.Endpoint{IP: "10.0.0.1", Port: 8080, TunnelPort: 15006},
		xdstest.Endpoint{IP: "10.0.0.2", Port: 8080, TunnelPort: 15006},
		xdstest.Endpoint{IP: "10.0.0.3", Port: 8080, TunnelPort: 15006},
	)
}

// tableOf is tableWith with the cluster's endpoints eps.
func tableOf(tb testing.TB, resilient bool, th *cluster.CircuitBreakers_Thresholds, eps ...xdstest.Endpoint) *router.Table {
	tb.Helper()
	c := xdstest.OutboundCluster("payment", "shop", 8080)
	vh := xdstest.ServiceVirtualHost("payment", "shop", 8080, true)
	if resilient {
		rt := vh.Routes[0].GetRoute()
		rt.RetryPolicy = xdstest.MeshRetryPolicy()
		vh.Routes[0].RequestBodyBufferLimit = wrapperspb.UInt64(mesh.DefaultRetryBufferBytes)
		c.OutlierDetection = &cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(5), BaseEjectionTime: durationpb.New(30 * time.Second)}
		c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
			Priority:           core.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(100), // below max_requests: tracked
			MaxPendingRequests: wrapperspb.UInt32(100),
			MaxRequests:        wrapperspb.UInt32(1024),
		}}}
	}
	if th != nil {
		c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{th}}
	}
	eds := xdstest.Assignment(c.GetName(), eps...)
	s, err := xdsclient.NewSnapshot([]*listener.Listener{xdstest.OutboundListener("10.0.0.9")},
		[]*route.RouteConfiguration{xdstest.OutboundRoute(vh)}, []*cluster.Cluster{c}, []*endpoint.ClusterLoadAssignment{eds})
	if err != nil {
		tb.Fatal(err)
	}
	t, err := router.Compile(s, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func TestRetryToAnotherEndpoint(t *testing.T) {
	tbl := table(t, true)
	ft := &fakeTransport{status: 200, down: map[string]bool{"10.0.0.1:8080": true, "10.0.0.2:8080": true}}
	h := outbound.NewHandler(tables{tbl}, ft, slog.New(slog.DiscardHandler))
	for range 30 {
		req := httptest.NewRequest(http.MethodPost, "http://payment.shop:8080/pay", nil)
		req.Header.Set(mesh.HeaderDebug, "1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || w.Header().Get(mesh.HeaderUpstream) != "10.0.0.3:8080" {
			t.Fatalf("status %d upstream %q attempts %q: %s", w.Code, w.Header().Get(mesh.HeaderUpstream), w.Header().Get(mesh.HeaderAttempts), w.Body)
		}
	}
}

// BenchmarkResiliencePath measures the outbound handler with a fake
// transport (no network), so the difference between "off" (no retry
// policy, no outlier detection, default limits) and "on" (the contract's
// default retries with body buffering, per-endpoint breakers, tracked
// connection/pending limits, retry budget) is the cost of the resilience
// path itself.
//
//	cd sidecar && go test -run '^$' -bench BenchmarkResiliencePath -benchtime 1s ./outbound/
func BenchmarkResiliencePath(b *testing.B) {
	for _, mode := range []struct {
		name string
		on   bool
	}{{"off", false}, {"on", true}} {
		h := outbound.NewHandler(tables{table(b, mode.on)}, &fakeTransport{status: 200}, slog.New(slog.DiscardHandler))
		b.Run(mode.name+"/sequential", func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "http://payment.shop:8080/pay", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
		b.Run(mode.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "http://payment.shop:8080/pay", nil)
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code)
					}
				}
			})
		})
	}
}
