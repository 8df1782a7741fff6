package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestInspectCommands(t *testing.T) {
	var gotProxy string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debug/proxies":
			_, _ = w.Write([]byte(`[{"id":"order-1.shop","connectedAt":"2026-01-01T00:00:00Z","versions":{"type.googleapis.com/envoy.config.listener.v3.Listener":{"acked":"7"}}}]`))
		case "/debug/config_dump":
			gotProxy = r.URL.Query().Get("proxy")
			_, _ = w.Write([]byte(`{"clusters":[{"name":"outbound|8080||payment.shop.svc.cluster.local"}]}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	out, err := run(t, "proxy-status", "--control-plane", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "PROXY") || !strings.Contains(out, "order-1.shop") || !strings.Contains(out, " 7 ") {
		t.Errorf("proxy-status output:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config-dump", "payment-1.shop"}, "payment-1.shop"},
		{[]string{"config-dump", "payment-1", "-n", "shop"}, "payment-1.shop"},
	} {
		out, err := run(t, append(tc.args, "--control-plane", addr)...)
		if err != nil {
			t.Fatal(err)
		}
		if gotProxy != tc.want || !strings.Contains(out, `"name": "outbound|8080||payment.shop.svc.cluster.local"`) {
			t.Errorf("%v: asked for %q, printed:\n%s", tc.args, gotProxy, out)
		}
	}

	if _, err := run(t, "up"); err == nil || !strings.Contains(err.Error(), `"file" not set`) {
		t.Errorf("up without -f: %v", err)
	}
	if _, err := run(t, "proxy-status", "--control-plane", "127.0.0.1:1"); err == nil {
		t.Error("proxy-status against nothing succeeded")
	}
}
