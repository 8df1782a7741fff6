package debug

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/control-plane/xds"
)

func TestMetricsMove(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeXDS{proxies: []xds.ProxyStatus{{ID: "a.ns"}, {ID: "b.ns"}}}
	pending := 3
	m, err := NewMetrics(reg, ConnectedOf(f), fakeCounters{}, WithPendingPushes(func() int { return pending }))
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(f, fakeCounters{}, slog.New(slog.DiscardHandler), WithGatherer(reg))
	scrape := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	before := scrape()
	for _, want := range []string{"weft_xds_connected_proxies 2", "weft_xds_pending_pushes 3", "weft_registry_errors_total 7", "weft_xds_push_latency_seconds_count 0"} {
		if !strings.Contains(before, want) {
			t.Errorf("before: metrics lack %q:\n%s", want, before)
		}
	}
	m.ResponseSent(resource.EndpointType, false, 1000)
	m.ResponseSent(resource.EndpointType, true, 300)
	m.ResponseSent(resource.ClusterType, false, 5000)
	m.Nacked(resource.RouteType)
	m.PushAcked(120*time.Millisecond, 2)
	f.proxies = f.proxies[:1]
	after := scrape()
	for _, want := range []string{
		"weft_xds_connected_proxies 1",
		`weft_xds_pushes_total{mode="sotw",type="eds"} 1`,
		`weft_xds_pushes_total{mode="delta",type="eds"} 1`,
		`weft_xds_pushes_total{mode="sotw",type="cds"} 1`,
		`weft_xds_config_bytes_sum{type="eds"} 1300`,
		`weft_xds_config_bytes_count{type="cds"} 1`,
		`weft_xds_nacks_total{type="rds"} 1`,
		"weft_xds_push_latency_seconds_count 1",
		"weft_xds_push_latency_seconds_sum 0.12",
		`weft_xds_push_latency_seconds_bucket{le="0.1"} 0`,
		`weft_xds_push_latency_seconds_bucket{le="0.15"} 1`,
		"weft_xds_push_proxies_sum 2",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("after: metrics lack %q:\n%s", want, after)
		}
	}
}

func TestPprofLoopbackOnly(t *testing.T) {
	h := NewHandler(&fakeXDS{}, nil, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		remote string
		want   int
	}{{"127.0.0.1:5000", http.StatusOK}, {"[::1]:5000", http.StatusOK}, {"10.0.0.1:5000", http.StatusForbidden}} {
		t.Run(tc.remote, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/debug/pprof/", nil)
			r.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.want {
				t.Fatalf("GET /debug/pprof/ from %s = %d, want %d", tc.remote, rec.Code, tc.want)
			}
		})
	}
}
