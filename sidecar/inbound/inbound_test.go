package inbound

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/sidecar/filter/retry"
	"github.com/weftmesh/weft/sidecar/router"
)

type noTables struct{}

func (noTables) Load() *router.Table { return nil }

// A sidecar without inbound configuration (just started, or its workload
// left the registry) never passes the request to its app, so its 503 must
// tell the caller's sidecar it may retry elsewhere whatever the method.
func TestNoConfigurationIsRetriableElsewhere(t *testing.T) {
	h := NewHandler(noTables{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "http://order:8080/checkout", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503", method, rec.Code)
		}
		if rec.Header().Get(mesh.HeaderAppUnreachable) == "" {
			t.Fatalf("%s: 503 without %s", method, mesh.HeaderAppUnreachable)
		}
		if c := retry.ClassifyResponse(rec.Code, rec.Header(), nil, true); c != retry.RefusedStream {
			t.Fatalf("%s: caller classifies it as %v, want RefusedStream", method, c)
		}
	}
}
