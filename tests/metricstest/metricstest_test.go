package metricstest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

func TestScrapeDiffAndTCP(t *testing.T) {
	l := []string{"outbound", "a", "ns", "id-a", "b", "ns", "ns/b", "id-b"}
	opened := TCPSeries(mesh.MetricTCPOpened, l...)
	closed := TCPSeries(mesh.MetricTCPClosed, l...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# HELP x\n" + opened + " 2\n" + closed + " 1\nother_total 7\n"))
	}))
	defer srv.Close()
	got, err := Scrape(t.Context(), srv.Client(), srv.URL, "weft_tcp_")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[opened] != 2 || got[closed] != 1 {
		t.Fatalf("scraped %v", got)
	}
	if OpenConns(got) != opened {
		t.Fatalf("OpenConns = %q, want %q", OpenConns(got), opened)
	}
	want := map[string]float64{}
	AddTCP(want, "p", 5, 0, l...)
	if len(want) != 3 || want["p "+TCPSeries(mesh.MetricTCPReceivedBytes, l...)] != 5 {
		t.Fatalf("AddTCP = %v", want)
	}
	if d := Diff(map[string]float64{"x": 1}, map[string]float64{"x": 2, "y": 1}); d != "unexpected +1: y\nwant 1 got 2: x" {
		t.Fatalf("Diff = %q", d)
	}
	if Diff(want, want) != "" {
		t.Fatal("Diff of equal maps is not empty")
	}
}
