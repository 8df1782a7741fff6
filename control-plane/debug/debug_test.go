package debug

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/xds"
)

type fakeXDS struct {
	ready   bool
	proxies []xds.ProxyStatus
}

func (f *fakeXDS) Ready() bool                { return f.ready }
func (f *fakeXDS) Proxies() []xds.ProxyStatus { return f.proxies }
func (f *fakeXDS) ConfigDump(id string) (*xds.ConfigDump, error) {
	if id != "a.ns" {
		return nil, fmt.Errorf("%w: %q", xds.ErrUnknownProxy, id)
	}
	return &xds.ConfigDump{ID: id, Resources: map[string]xds.TypeDump{}}, nil
}

type fakeCounters struct{}

func (fakeCounters) RegistryErrors() uint64 { return 7 }

func TestHandler(t *testing.T) {
	f := &fakeXDS{proxies: []xds.ProxyStatus{{
		ID: "a.ns", ConnectedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Versions: map[string]xds.TypeStatus{"t": {Acked: "3", Nack: "bad", Sent: "4"}},
	}}}
	h := NewHandler(f, fakeCounters{}, slog.New(slog.DiscardHandler))
	do := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
		return rec
	}
	if rec := do("/healthz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz before ready = %d", rec.Code)
	}
	f.ready = true
	if rec := do("/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("healthz when ready = %d", rec.Code)
	}
	rec := do("/debug/proxies")
	var got []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"a.ns","connectedAt":"2026-01-02T03:04:05Z","versions":{"t":{"acked":"3","nack":"bad","sent":"4"}}}]`
	if strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("proxies = %s, want %s", rec.Body.String(), want)
	}
	for path, code := range map[string]int{
		"/debug/config_dump":            http.StatusBadRequest,
		"/debug/config_dump?proxy=x.y":  http.StatusNotFound,
		"/debug/config_dump?proxy=a.ns": http.StatusOK,
	} {
		if rec := do(path); rec.Code != code {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, code)
		}
	}
	if rec := do("/metrics"); !strings.Contains(rec.Body.String(), "weft_registry_errors_total 7") ||
		!strings.Contains(rec.Body.String(), "weft_xds_connected_proxies 1") {
		t.Fatalf("metrics = %s", rec.Body.String())
	}
}
