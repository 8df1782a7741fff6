package debugclient

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProxiesAndTable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debug/proxies":
			_, _ = w.Write([]byte(`[
			 {"id":"payment-1.shop","connectedAt":"2026-01-01T00:00:00Z","versions":{
			   "type.googleapis.com/envoy.config.listener.v3.Listener":{"acked":"3","sent":"3"},
			   "type.googleapis.com/envoy.config.cluster.v3.Cluster":{"acked":"4","sent":"5"},
			   "type.googleapis.com/envoy.config.route.v3.RouteConfiguration":{"acked":"2","nack":"route \"outbound\":\n bad"},
			   "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment":{"nack":"no"}}},
			 {"id":"api-gateway-1.shop","connectedAt":"2026-01-01T00:00:50Z","versions":{}}]`))
		case "/debug/config_dump":
			if r.URL.Query().Get("proxy") != "payment-1.shop" {
				http.Error(w, "unknown proxy", http.StatusNotFound)
				return
			}
			_, _ = w.Write([]byte(`{"listeners":[]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Proxies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].ID != "api-gateway-1.shop" {
		t.Fatalf("proxies = %+v", ps)
	}
	var buf bytes.Buffer
	if err := WriteStatusTable(&buf, ps, time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PROXY               CONNECTED  LDS  RDS                              CDS         EDS       SDS",
		"api-gateway-1.shop  10s ago    -    -                                -           -         -",
		`payment-1.shop      1m0s ago   3    2 (NACK: route "outbound": bad)  4 (sent 5)  NACK: no  -`,
	}
	got := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	for i := range want {
		if i >= len(got) || strings.TrimRight(got[i], " ") != want[i] {
			t.Fatalf("table:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
		}
	}
	dump, err := c.ConfigDump(t.Context(), "payment-1.shop")
	if err != nil || string(dump) != "{\n  \"listeners\": []\n}\n" {
		t.Fatalf("dump = %q, %v", dump, err)
	}
	if _, err := c.ConfigDump(t.Context(), "nope.shop"); err == nil || !strings.Contains(err.Error(), "unknown proxy") {
		t.Fatalf("err = %v", err)
	}
}
