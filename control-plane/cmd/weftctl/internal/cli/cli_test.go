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

func TestCertsAndRotateRoot(t *testing.T) {
	var rotated []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/debug/certs":
			_, _ = w.Write([]byte(`[{"proxy":"order-1.shop","identity":"spiffe://cluster.local/ns/shop/sa/order","serial":"abc123",` +
				`"notBefore":"2026-01-01T00:00:00Z","notAfter":"2026-01-02T00:00:00Z"}]`))
		case r.Method == http.MethodPost && r.URL.Path == "/debug/ca/rotate-root":
			rotated = append(rotated, r.URL.Query().Get("step")+"/"+r.URL.Query().Get("force"))
			if r.URL.Query().Get("step") == "remove" && r.URL.Query().Get("force") == "" {
				http.Error(w, "root rotation refused: proxies still hold certificates", http.StatusConflict)
				return
			}
			_, _ = w.Write([]byte(`{"step":"add","roots":[{},{}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	out, err := run(t, "certs", "--control-plane", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PROXY", "IDENTITY", "SERIAL", "NOT AFTER", "order-1.shop", "spiffe://cluster.local/ns/shop/sa/order", "abc123", "2026-01-02T00:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("certs output lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "ca", "rotate-root", "--step", "add", "--control-plane", addr); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "ca", "rotate-root", "--step", "remove", "--control-plane", addr); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("refused remove: %v", err)
	}
	if _, err := run(t, "ca", "rotate-root", "--step", "remove", "--force", "--control-plane", addr); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rotated, ","); got != "add/,remove/,remove/true" {
		t.Fatalf("steps sent: %s", got)
	}
	if _, err := run(t, "ca", "rotate-root", "--control-plane", addr); err == nil {
		t.Fatal("rotate-root without --step succeeded")
	}
}
