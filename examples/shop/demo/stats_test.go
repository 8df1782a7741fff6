package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tc := range tests {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %s, want %s", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("empty percentile")
	}
}

func TestStatsFromReplies(t *testing.T) {
	st := newStats()
	t0 := time.Unix(100, 0)
	for i, pay := range []string{"payment-1", "payment-2", "payment-1"} {
		at := t0.Add(time.Duration(i) * time.Second)
		st.add(sample{route: routeOrder[0], at: at, latency: 3 * time.Millisecond, instance: "api-gateway-1"})
		st.addReply(at, &app.Reply{Service: "api-gateway", Instance: "api-gateway-1", Calls: []app.Call{{
			Service: "order", URL: app.DefaultOrderURL, LatencyMS: 2,
			Reply: &app.Reply{Service: "order", Instance: "order-1", Calls: []app.Call{
				{Service: "payment", URL: app.DefaultPaymentURL, LatencyMS: 1, Reply: &app.Reply{Instance: pay}},
				{Service: "inventory", URL: app.DefaultInventoryURL, LatencyMS: 1, Error: "status 503"},
			}},
		}}})
	}
	if st.totalErrors() != 3 {
		t.Errorf("errors = %d, want 3", st.totalErrors())
	}
	if at, ok := st.firstServed("payment-2", t0); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("firstServed = %v %v", at, ok)
	}
	if at, ok := st.lastServed("payment-1"); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Errorf("lastServed = %v %v", at, ok)
	}
	var buf bytes.Buffer
	if err := st.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"GET /checkout (api-gateway)  3         0       3.00ms  3.00ms  api-gateway-1=3",
		"GET /pay (payment)           3         0       1.00ms  1.00ms  payment-1=2 payment-2=1",
		"GET /reserve (inventory)     3         3",
		"last error on GET /reserve (inventory): status 503",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
