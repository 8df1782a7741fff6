package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	client, err := NewClient(cfg.Proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 2 * time.Second
	h, err := Handler(cfg, client)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestChainReportsInstancesAndPropagatesTrace(t *testing.T) {
	pay := serve(t, Config{Role: RolePayment, Instance: "payment-1"})
	inv := serve(t, Config{Role: RoleInventory, Instance: "inventory-1"})
	ord := serve(t, Config{Role: RoleOrder, Instance: "order-1", PaymentURL: pay.URL + PathPay, InventoryURL: inv.URL + PathReserve})
	gw := serve(t, Config{Role: RoleAPIGateway, Instance: "gw-1", OrderURL: ord.URL + PathOrder})

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.URL+PathCheckout, nil)
	if err != nil {
		t.Fatal(err)
	}
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req.Header.Set("traceparent", tp)
	req.Header.Set("X-B3-Sampled", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var r Reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Instance != "gw-1" || len(r.Calls) != 1 || r.Calls[0].Reply == nil {
		t.Fatalf("gateway reply = %+v", r)
	}
	o := r.Calls[0].Reply
	if o.Instance != "order-1" || len(o.Calls) != 2 {
		t.Fatalf("order reply = %+v", o)
	}
	got := map[string]string{}
	for _, c := range o.Calls {
		if c.Reply == nil || c.Error != "" {
			t.Fatalf("call %+v", c)
		}
		got[c.Service] = c.Reply.Instance
		if c.LatencyMS <= 0 {
			t.Errorf("%s: latency %v not recorded", c.Service, c.LatencyMS)
		}
		if c.Reply.Trace["traceparent"] != tp || c.Reply.Trace["x-b3-sampled"] != "1" {
			t.Errorf("%s got trace %v", c.Service, c.Reply.Trace)
		}
	}
	if got[RolePayment] != "payment-1" || got[RoleInventory] != "inventory-1" {
		t.Errorf("instances = %v", got)
	}
}

func TestUpstreamFailureIs502(t *testing.T) {
	gw := serve(t, Config{Role: RoleAPIGateway, Instance: "gw", OrderURL: "http://127.0.0.1:1/order"})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.URL+PathCheckout, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

func TestUnknownRole(t *testing.T) {
	if _, err := Handler(Config{Role: "cashier"}, http.DefaultClient); err == nil {
		t.Error("want error for unknown role")
	}
}
