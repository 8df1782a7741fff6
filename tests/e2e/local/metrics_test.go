package local

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/metricstest"

	"github.com/weftmesh/weft/api/mesh"
)

// series reads the sidecar's /metrics and returns name{labels} -> value
// for the metrics with one of the prefixes.
func series(ctx context.Context, ip string, prefixes ...string) (map[string]float64, error) {
	return seriesAt(ctx, fmt.Sprintf("%s:%d", ip, mesh.PortHealth), prefixes...)
}

// seriesAt is series of the sidecar whose health port is at healthAddr.
func seriesAt(ctx context.Context, healthAddr string, prefixes ...string) (map[string]float64, error) {
	return metricstest.Scrape(ctx, http.DefaultClient, "http://"+healthAddr+"/metrics", prefixes...)
}

func reqSeries(metric, dir, src, srcSA, dst, dstSA, dstSvc, code string) string {
	id := func(sa string) string {
		if sa == "" {
			return ""
		}
		return "spiffe://cluster.local/ns/shop/sa/" + sa
	}
	ns := func(w string) string {
		if w == "" {
			return ""
		}
		return "shop"
	}
	return fmt.Sprintf(`%s{destination_identity=%q,destination_namespace=%q,destination_service=%q,destination_workload=%q,direction=%q,response_code=%q,source_identity=%q,source_namespace=%q,source_workload=%q}`,
		metric, id(dstSA), ns(dst), dstSvc, dst, dir, code, id(srcSA), ns(src), src)
}

// TestRequestMetricsMatchTraffic: after a known mix of requests, the
// request counters and histogram counts of every sidecar on the path moved
// by exactly that mix, with the source and destination labels (the
// inbound side's destination_service from its inbound cluster's services).
func TestRequestMetricsMatchTraffic(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "absent"}
	p.Extra = tracingExtra(p, p.IP(201)+":4318", "0")
	e := startSecureMesh(t, p)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	checkout := "http://api-gateway.shop:8080/checkout"
	missing := "http://api-gateway.shop:8080/nope"
	for {
		if _, _, err := e.get(ctx, checkout); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mesh never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	ips := map[string]string{"client": p.IP(10), "api-gateway-1": p.IP(15), "order-1": p.IP(11), "payment-1": p.IP(12), "inventory-1": p.IP(14)}
	prefixes := []string{
		"weft_requests_total{", "weft_request_duration_seconds_count{", "weft_request_bytes_count{", "weft_response_bytes_count{",
		"weft_request_bytes_sum{", "weft_request_bytes_bucket{",
	}
	scrape := func() map[string]float64 {
		all := map[string]float64{}
		for wl, ip := range ips {
			s, err := series(ctx, ip, prefixes...)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range s {
				all[wl+" "+k] = v
			}
		}
		return all
	}
	before := scrape()
	const ok, notFound = 5, 3
	for range ok {
		if _, _, err := e.get(ctx, checkout); err != nil {
			t.Fatal(err)
		}
	}
	for range notFound {
		if _, code, _ := e.get(ctx, missing); code != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", missing, code)
		}
	}
	svc := func(s string) string { return s + ".shop.svc.cluster.local" }
	want := map[string]float64{}
	add := func(wl string, n float64, dir, src, srcSA, dst, dstSA, dstSvc, code string) {
		for _, m := range []string{"weft_requests_total", "weft_request_duration_seconds_count", "weft_request_bytes_count", "weft_response_bytes_count"} {
			want[wl+" "+reqSeries(m, dir, src, srcSA, dst, dstSA, dstSvc, code)] += n
		}
	}
	add("client", ok, "outbound", "client", "client", "api-gateway-1", "api-gateway", svc("api-gateway"), "200")
	add("client", notFound, "outbound", "client", "client", "api-gateway-1", "api-gateway", svc("api-gateway"), "404")
	add("api-gateway-1", ok, "inbound", "client", "client", "api-gateway-1", "api-gateway", svc("api-gateway"), "200")
	add("api-gateway-1", notFound, "inbound", "client", "client", "api-gateway-1", "api-gateway", svc("api-gateway"), "404")
	add("api-gateway-1", ok, "outbound", "api-gateway-1", "api-gateway", "order-1", "order", svc("order"), "200")
	add("order-1", ok, "inbound", "api-gateway-1", "api-gateway", "order-1", "order", svc("order"), "200")
	add("order-1", ok, "outbound", "order-1", "order", "payment-1", "payment", svc("payment"), "200")
	add("order-1", ok, "outbound", "order-1", "order", "inventory-1", "inventory", svc("inventory"), "200")
	add("payment-1", ok, "inbound", "order-1", "order", "payment-1", "payment", svc("payment"), "200")
	add("inventory-1", ok, "inbound", "order-1", "order", "inventory-1", "inventory", svc("inventory"), "200")

	// The requests are GETs without a body: weft_request_bytes_sum does not
	// move and every bucket of weft_request_bytes (cumulative, from
	// le="64") moves by exactly the series' count.
	for k, v := range want {
		if wl, series, ok := strings.Cut(k, " weft_request_bytes_count{"); ok {
			for _, le := range []string{"64", "256", "1024", "4096", "16384", "65536", "262144", "1.048576e+06", "4.194304e+06", "1.6777216e+07", "+Inf"} {
				want[wl+" weft_request_bytes_bucket{"+strings.TrimSuffix(series, "}")+`,le="`+le+`"}`] = v
			}
		}
	}

	after := scrape()
	got := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			got[k] = d
		}
	}
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("want %v got %v: %s", v, got[k], k))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected +%v: %s", v, k))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("metrics differ from the traffic:\n%s", strings.Join(diffs, "\n"))
	}
}
