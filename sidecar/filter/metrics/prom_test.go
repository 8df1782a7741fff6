package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSeriesKey(t *testing.T) {
	if len(requestLabels) != nRequestLabels {
		t.Fatalf("nRequestLabels = %d, requestLabels has %d", nRequestLabels, len(requestLabels))
	}
}

func TestObserveCachesSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewRequests(reg)
	a := []string{"inbound", "a", "ns", "spiffe://td/ns/ns/sa/a", "b", "ns", "b.ns.svc.cluster.local", "spiffe://td/ns/ns/sa/b", "200"}
	b := append([]string(nil), a...)
	b[8] = "503"
	for range 3 {
		r.Observe(a, 0.002, 10, 1024)
	}
	r.Observe(b, 0.5, 0, 20)
	if got := testutil.ToFloat64(r.Total.WithLabelValues(a...)); got != 3 {
		t.Errorf("total{200} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.Total.WithLabelValues(b...)); got != 1 {
		t.Errorf("total{503} = %v, want 1", got)
	}
	n, err := testutil.GatherAndCount(reg, "weft_request_duration_seconds", "weft_request_bytes", "weft_response_bytes")
	if err != nil || n != 6 {
		t.Errorf("histogram series = %d (%v), want 6", n, err)
	}
	// A wrong label count still reaches the vectors, which panic as before.
	defer func() {
		if recover() == nil {
			t.Error("observe with 2 labels did not panic")
		}
	}()
	r.Observe([]string{"x", "y"}, 0, 0, 0)
}

func BenchmarkObserve(b *testing.B) {
	r := NewRequests(prometheus.NewRegistry())
	lv := []string{"inbound", "a", "ns", "spiffe://td/ns/ns/sa/a", "b", "ns", "b.ns.svc.cluster.local", "spiffe://td/ns/ns/sa/b", "200"}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Observe(lv, 0.002, 10, 1024)
		}
	})
	b.Run("vectors", func(b *testing.B) { // what Observe did before
		b.ReportAllocs()
		for b.Loop() {
			r.Total.WithLabelValues(lv...).Inc()
			r.Duration.WithLabelValues(lv...).Observe(0.002)
			r.ReqSize.WithLabelValues(lv...).Observe(10)
			r.RespSize.WithLabelValues(lv...).Observe(1024)
		}
	})
}
