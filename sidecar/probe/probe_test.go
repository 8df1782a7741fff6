package probe

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestHandler(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "1" {
				w.WriteHeader(http.StatusTeapot)
				return
			}
			_, _ = io.WriteString(w, "fine")
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer app.Close()
	_, ps, _ := net.SplitHostPort(app.Listener.Addr().String())
	port, _ := strconv.Atoi(ps)
	// A closed port for the unreachable case.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	js, _ := json.Marshal(map[string]Probe{
		"/app-health/web/readyz":   {Port: port, Path: "/ok", Scheme: "HTTP", HTTPHeaders: []Header{{"X-Probe", "1"}}},
		"/app-health/web/livez":    {Port: port, Path: "bad"},
		"/app-health/web/startupz": {Port: deadPort, Path: "/"},
	})
	h, err := New(string(js))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/app-health/web/readyz", 200},
		{"/app-health/web/livez", 500},
		{"/app-health/web/startupz", 503},
		{"/app-health/other/readyz", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	for _, bad := range []string{`{`, `{"/x":{"port":0}}`, `{"/x":{"port":1,"scheme":"TCP"}}`} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%s) succeeded", bad)
		}
	}
}
