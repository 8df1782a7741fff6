package debug

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/xds"
)

func TestCertsAndRootRotation(t *testing.T) {
	refused := errors.New("refused")
	var steps []string
	h := NewHandler(&fakeXDS{ready: true}, nil, slog.New(slog.DiscardHandler),
		WithCertificates(func() []xds.CertStatus {
			return []xds.CertStatus{{
				Proxy: "a.ns", Identity: "spiffe://td/ns/ns/sa/a", Serial: "ff",
				NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
			}}
		}),
		WithRootRotation(func(_ context.Context, step string, force bool) (any, error) {
			steps = append(steps, step)
			if step == "remove" && !force {
				return nil, refused
			}
			if step == "bad" {
				return nil, errors.New("disk full")
			}
			return map[string]string{"step": step}, nil
		}, refused),
		WithMetrics(func(w io.Writer) { _, _ = io.WriteString(w, "weft_ca_certificates 1\n") }),
	)
	do := func(method, path, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const local = "127.0.0.1:5555"
	cases := []struct {
		name, method, path, remote string
		code                       int
		body                       string
	}{
		{"certs", http.MethodGet, "/debug/certs", local, 200, `[{"proxy":"a.ns","identity":"spiffe://td/ns/ns/sa/a","serial":"ff","notBefore":"2026-01-01T00:00:00Z","notAfter":"2026-01-02T00:00:00Z"}]`},
		{"add", http.MethodPost, "/debug/ca/rotate-root?step=add", local, 200, `{"step":"add"}`},
		{"add over IPv6 loopback", http.MethodPost, "/debug/ca/rotate-root?step=add", "[::1]:5555", 200, `{"step":"add"}`},
		{"remove refused", http.MethodPost, "/debug/ca/rotate-root?step=remove", local, 409, "refused"},
		{"remove forced", http.MethodPost, "/debug/ca/rotate-root?step=remove&force=true", local, 200, `{"step":"remove"}`},
		{"failure", http.MethodPost, "/debug/ca/rotate-root?step=bad", local, 500, "disk full"},
		{"not loopback", http.MethodPost, "/debug/ca/rotate-root?step=add", "10.0.0.1:5555", 403, "loopback"},
		{"GET is not a step", http.MethodGet, "/debug/ca/rotate-root?step=add", local, 405, ""},
		{"metrics", http.MethodGet, "/metrics", local, 200, "weft_ca_certificates 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(c.method, c.path, c.remote)
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) {
				t.Fatalf("%s %s from %s = %d %q, want %d containing %q", c.method, c.path, c.remote, w.Code, w.Body.String(), c.code, c.body)
			}
		})
	}
	if got := strings.Join(steps, ","); got != "add,add,remove,remove,bad" {
		t.Fatalf("steps run: %s (a refused client must not reach the rotator)", got)
	}
}
