package authz

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	rbacconfig "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftmesh/weft/api/authz"
)

const gateway = "spiffe://cluster.local/ns/shop/sa/api-gateway"

func engine(t *testing.T) *authz.Engine {
	t.Helper()
	e, err := authz.Compile([]authz.Filter{{Name: "weft.authz.allow", Config: &rbacfilter.RBAC{Rules: &rbacconfig.RBAC{
		Action: rbacconfig.RBAC_ALLOW,
		Policies: map[string]*rbacconfig.Policy{"shop/api/rules[0]": {
			Permissions: []*rbacconfig.Permission{{Rule: &rbacconfig.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "/admin"}}}}}}},
			Principals:  []*rbacconfig.Principal{{Identifier: &rbacconfig.Principal_Authenticated_{Authenticated: &rbacconfig.Principal_Authenticated{PrincipalName: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: gateway}}}}}},
		}},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestInbound(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := New(slog.New(slog.DiscardHandler), WithRegisterer(reg))
	e := engine(t)
	tests := []struct {
		name, target, peer string
		nilEngine          bool
		want               int
		wantPath           string
	}{
		{name: "allowed, path normalized for the app", target: "/x/../%61dmin", peer: gateway, want: 200, wantPath: "/admin"},
		{name: "merged slashes", target: "//admin", peer: gateway, want: 200, wantPath: "/admin"},
		{name: "encoded slash rejected", target: "/admin%2F", peer: gateway, want: 400},
		{name: "case variant denied", target: "/ADMIN", peer: gateway, want: 403},
		{name: "other identity denied", target: "/admin", peer: "spiffe://cluster.local/ns/shop/sa/rogue", want: 403},
		{name: "plaintext denied", target: "/admin", want: 403},
		{name: "no engine: fail closed", target: "/admin", peer: gateway, nilEngine: true, want: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://order"+tc.target, nil)
			r.Header.Set("X-Forwarded-Client-Cert", "URI="+gateway)
			r.Header.Set("X-Weft-Peer-Identity", gateway)
			w := httptest.NewRecorder()
			eng := e
			if tc.nilEngine {
				eng = nil
			}
			ok := f.Inbound(w, r, eng, tc.peer, 8080)
			if r.Header.Get("X-Forwarded-Client-Cert") != "" || r.Header.Get("X-Weft-Peer-Identity") != "" {
				t.Error("identity headers not stripped")
			}
			code := 200
			if !ok {
				code = w.Code
			}
			if code != tc.want {
				t.Fatalf("status %d, want %d (%s)", code, tc.want, w.Body.String())
			}
			if ok && r.URL.EscapedPath() != tc.wantPath {
				t.Errorf("path for the app %q, want %q", r.URL.EscapedPath(), tc.wantPath)
			}
			if code == 403 {
				body, _ := io.ReadAll(w.Body)
				if strings.TrimSpace(string(body)) != "weft: RBAC: access denied" {
					t.Errorf("403 body %q", body)
				}
			}
		})
	}
	if got := testutil.ToFloat64(f.Denied().WithLabelValues("weft.authz.allow:default-deny")); got != 3 {
		t.Errorf("denied{weft.authz.allow:default-deny} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.Denied().WithLabelValues("authz:missing")); got != 1 {
		t.Errorf("denied{authz:missing} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "weft_authz_denied_total"); err != nil || n != 2 {
		t.Errorf("registry has %d series (%v), want 2", n, err)
	}
}
