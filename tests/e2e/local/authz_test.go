package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/control-plane/launch"
)

// The authorization end-to-end test (issue 6): the shop's policies
// (examples/shop/policies.yaml) enforced by real sidecars over mTLS:
// only api-gateway may call order on 8080, order may reach payment and
// PostgreSQL's port only, everything else is denied; attack requests are
// denied; a policy changed at run time takes effect within 1 s without
// dropping allowed traffic.

func authzWorkload(name, app, sa, ip, role, portName string, port int) string {
	s := fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: %s
  namespace: shop
  labels: {app: %s}
`, name, app)
	if role != "" {
		s += fmt.Sprintf(`  annotations:
    local.weft.dev/command: >-
      {{.BinDir}}/shop --role=%s --instance={{.Name}} --listen={{.Address}}:{{.Port %q}} --proxy={{.ProxyURL}} %s
`, role, portName, faultAdminFlag)
	}
	s += fmt.Sprintf("spec:\n  address: %s\n  serviceAccount: %s\n", ip, sa)
	if port != 0 {
		s += fmt.Sprintf("  ports: [{name: %s, port: %d}]\n", portName, port)
	}
	return s + "---\n"
}

func authzMesh(t *testing.T, base string, extra string) []byte {
	t.Helper()
	pol, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "shop", "policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range [][3]string{{"order", "http", "8080"}, {"payment", "http", "8080"}, {"inventory", "http", "8080"}, {"postgres", "pg", "5432"}} {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: shop}\nspec:\n  selector: {app: %s}\n  ports: [{name: %s, port: %s, targetPort: %s}]\n---\n", s[0], s[0], s[1], s[2], s[1])
	}
	ip := func(n int) string { return fmt.Sprintf("%s.%d", base, n) }
	b.WriteString(authzWorkload("api-gateway-1", "api-gateway", "api-gateway", ip(10), "", "", 0))
	b.WriteString(authzWorkload("rogue-1", "rogue", "rogue", ip(11), "", "", 0))
	b.WriteString(authzWorkload("order-1", "order", "order", ip(12), "order", "http", 8080))
	b.WriteString(authzWorkload("payment-1", "payment", "payment", ip(13), "payment", "http", 8080))
	b.WriteString(authzWorkload("inventory-1", "inventory", "inventory", ip(14), "inventory", "http", 8080))
	b.WriteString(authzWorkload("postgres-1", "postgres", "postgres", ip(15), "payment", "pg", 5432))
	b.Write(pol)
	b.WriteString(extra)
	return []byte(b.String())
}

type authzEnv struct {
	*env
	clients map[string]*http.Client
}

func startAuthzMesh(t *testing.T, extra ...string) (*authzEnv, string) {
	t.Helper()
	base := randomBase()
	dir := t.TempDir()
	e := &env{dir: dir, meshFile: filepath.Join(dir, "mesh.yaml")}
	e.writeFile(t, authzMesh(t, base, strings.Join(extra, "")))
	m, err := launch.Start(t.Context(), e.meshFile, binDir,
		launch.WithControlPlaneIP(base+".1"),
		launch.WithRunDir(filepath.Join(dir, "logs")),
		launch.WithLogLevel("info"),
		launch.WithStopTimeout(3*time.Second),
		launch.WithReadyTimeout(30*time.Second),
		launch.WithSecureXDS(),
	)
	if err != nil {
		t.Fatalf("start mesh on %s.0/24: %v", base, err)
	}
	e.m = m
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs(t)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop mesh: %v", err)
		}
	})
	ae := &authzEnv{env: e, clients: map[string]*http.Client{}}
	for _, w := range m.Workloads() {
		u, err := url.Parse(w.ProxyURL())
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}
		t.Cleanup(tr.CloseIdleConnections)
		ae.clients[w.Name] = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	return ae, base
}

// call sends a request as workload from (through its sidecar) and returns
// the status and body.
func (e *authzEnv) call(ctx context.Context, from, method, rawURL string, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.clients[from].Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), err
}

// waitStatus polls until the call answers want, and returns how long it
// took.
func (e *authzEnv) waitStatus(t *testing.T, from, rawURL string, want int, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < deadline {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		code, body, err := e.call(ctx, from, http.MethodGet, rawURL, nil)
		cancel()
		if err == nil && code == want {
			return time.Since(start)
		}
		last = fmt.Sprintf("%d %.200s %v", code, body, err)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s -> %s: never %d within %s (last: %s)", from, rawURL, want, deadline, last)
	return 0
}

func TestAuthzShopPolicies(t *testing.T) {
	e, base := startAuthzMesh(t)
	const order = "http://order.shop:8080"
	// The whole mesh is up and configured once api-gateway reaches order.
	e.waitStatus(t, "api-gateway-1", order+"/healthz", http.StatusOK, 20*time.Second)

	type probe struct {
		name, from, method, url string
		hdr                     map[string]string
		want                    int
	}
	spiffe := func(sa string) string { return mesh.SPIFFEID(mesh.DefaultTrustDomain, "shop", sa) }
	probes := []probe{
		{"api-gateway may call order", "api-gateway-1", "GET", order + "/healthz", nil, 200},
		{"another identity may not", "rogue-1", "GET", order + "/healthz", nil, 403},
		{"inventory may not call order", "inventory-1", "GET", order + "/healthz", nil, 403},
		{"payment may not call order", "payment-1", "GET", order + "/healthz", nil, 403},
		{"POST is not allowed", "api-gateway-1", "POST", order + "/healthz", nil, 403},
		{"dot segments: /admin/../admin", "api-gateway-1", "GET", order + "/admin/../admin", nil, 403},
		{"merged slashes: //admin", "api-gateway-1", "GET", order + "//admin", nil, 403},
		{"encoded unreserved: /%61dmin", "api-gateway-1", "GET", order + "/%61dmin", nil, 403},
		{"encoded slash: /admin%2F", "api-gateway-1", "GET", order + "/admin%2F", nil, 400},
		{"encoded backslash: /admin%5C", "api-gateway-1", "GET", order + "/admin%5C", nil, 400},
		{"case variant of an allowed path: /HEALTHZ", "api-gateway-1", "GET", order + "/HEALTHZ", nil, 403},
		{"case variant of an allowed prefix: /ORDER/1", "api-gateway-1", "GET", order + "/ORDER/1", nil, 403},
		{"case variant of a denied path: /Admin", "api-gateway-1", "GET", order + "/Admin", nil, 403},
		{"escape from an allowed prefix: /order/../admin", "api-gateway-1", "GET", order + "/order/../admin", nil, 403},
		{"encoded dot segments: /order/%2e%2e/admin", "api-gateway-1", "GET", order + "/order/%2e%2e/admin", nil, 403},
		{"encoded slash after dots: /order/..%2Fadmin", "api-gateway-1", "GET", order + "/order/..%2Fadmin", nil, 400},
		{"dot segments into an allowed path still allowed", "api-gateway-1", "GET", order + "/x/../healthz", nil, 200},
		{"forged identity headers", "rogue-1", "GET", order + "/healthz", map[string]string{
			mesh.HeaderForwardedClientCert: "By=" + spiffe("order") + ";URI=" + spiffe("api-gateway"),
			mesh.HeaderPeerIdentity:        spiffe("api-gateway"),
		}, 403},
		{"order may reach payment", "order-1", "GET", "http://payment.shop:8080/pay", nil, 200},
		{"order may reach postgres's port", "order-1", "GET", "http://postgres.shop:5432/pay", nil, 200},
		{"order may not reach inventory (egress)", "order-1", "GET", "http://inventory.shop:8080/reserve", nil, 403},
		{"payment is only for order", "api-gateway-1", "GET", "http://payment.shop:8080/pay", nil, 403},
		{"postgres is only for order", "rogue-1", "GET", "http://postgres.shop:5432/pay", nil, 403},
		{"inventory is default-denied", "api-gateway-1", "GET", "http://inventory.shop:8080/reserve", nil, 403},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			code, body, err := e.call(ctx, p.from, p.method, p.url, p.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if code != p.want {
				t.Fatalf("%s %s from %s: %d %q, want %d", p.method, p.url, p.from, code, body, p.want)
			}
			if code == 403 && strings.TrimSpace(body) != "weft: RBAC: access denied" {
				t.Errorf("403 body %q names more than it should", body)
			}
		})
	}

	t.Run("denials are logged with the deciding rule and counted", func(t *testing.T) {
		w, _ := e.m.Workload("order-1")
		data, err := os.ReadFile(e.m.SidecarLogFile(w))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"shop/deny-admin/rules[0]", "weft.netpol.ingress:default-deny", "weft.authz.allow:default-deny"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("order's sidecar log has no denial by %s", want)
			}
		}
		resp, err := http.Get("http://" + w.HealthAddress() + "/metrics") //nolint:noctx // bounded by the default client in a test
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		m, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(m), `weft_authz_denied_total{policy="shop/deny-admin/rules[0]"}`) {
			t.Errorf("metrics lack weft_authz_denied_total for the deny rule:\n%.2000s", m)
		}
	})

	t.Run("scoping: order's config has no inventory", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		for proxy, want := range map[string]bool{"order-1.shop": false, "rogue-1.shop": true} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.m.ControlPlane().DebugAddress+"/debug/config_dump?proxy="+proxy, nil)
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if got := strings.Contains(string(body), "inventory.shop.svc"); got != want {
				t.Errorf("%s: config mentions inventory = %v, want %v", proxy, got, want)
			}
		}
	})

	t.Run("policy change at run time within 1s, allowed traffic kept", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				code, body, err := e.call(rctx, "api-gateway-1", http.MethodGet, order+"/healthz", nil)
				rcancel()
				switch {
				case ctx.Err() != nil:
				case err == nil && code == 200:
					ok.Add(1)
				default:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
				}
			}
		}()
		// Let rogue in: a NetworkPolicy peer and an ALLOW rule for it.
		extra := `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: order-from-rogue, namespace: shop}
spec:
  podSelector: {matchLabels: {app: order}}
  ingress: [{from: [{podSelector: {matchLabels: {app: rogue}}}], ports: [{port: 8080}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: order-rogue, namespace: shop}
spec:
  selector: {matchLabels: {app: order}}
  rules: [{from: [{serviceAccounts: [rogue]}], to: [{paths: [/healthz]}]}]
`
		e.writeFile(t, authzMesh(t, base, extra))
		took := e.waitStatus(t, "rogue-1", order+"/healthz", http.StatusOK, 5*time.Second)
		t.Logf("rogue allowed %s after the file changed", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("policy change took %s, want <= 1s", took)
		}
		// And back: rogue denied again.
		e.writeFile(t, authzMesh(t, base, ""))
		took = e.waitStatus(t, "rogue-1", order+"/healthz", http.StatusForbidden, 5*time.Second)
		t.Logf("rogue denied again %s after the file changed", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("policy removal took %s, want <= 1s", took)
		}
		cancel()
		<-done
		t.Logf("allowed traffic during the changes: %d ok, %d failed", ok.Load(), failed.Load())
		if failed.Load() > 0 {
			t.Errorf("%d allowed requests failed during policy changes (first: %v)", failed.Load(), firstErr.Load())
		}
		if ok.Load() == 0 {
			t.Error("no allowed request completed during the changes")
		}
	})
}

// TestAuthzFailsClosedWithoutPolicy: a sidecar that starts before its
// configuration (listeners and RBAC) is available lets nothing reach its
// app; once the configuration arrives, the policy holds from the first
// request on (the allowed caller gets in, the other one never does).
func TestAuthzFailsClosedWithoutPolicy(t *testing.T) {
	// Outlier detection off for order: the callers' sidecars would
	// otherwise eject order's only endpoint (every call fails while it has
	// no listener) and keep answering 503 for the ejection time after the
	// policy arrived, which is the breaker's doing, not authorization's.
	e, _ := startAuthzMesh(t, `---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: order, namespace: shop}
spec:
  targetRef: {name: order}
  outlierDetection: {consecutive5xx: 0}
`)
	const order = "http://order.shop:8080/healthz"
	e.waitStatus(t, "api-gateway-1", order, http.StatusOK, 20*time.Second)
	w, _ := e.m.Workload("order-1")

	// The control plane goes away and order's sidecar starts again: it
	// has no certificate, no listener and no policy.
	if err := e.m.KillControlPlane(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RestartSidecar(t.Context(), w.NodeID()); err != nil {
		t.Fatal(err)
	}
	appBefore := e.faultStats(t, "order-1").Requests
	// Bounded: rounds of calls from the allowed and a denied caller, plus
	// a plaintext request straight at the inbound port, for 1.5s (at least
	// 3 rounds; longer would only grow the sidecar's reconnect backoff).
	phase := time.Now()
	rounds := 0
	for i := 0; i < 3 || time.Since(phase) < 1500*time.Millisecond; i++ {
		rounds++
		for _, from := range []string{"api-gateway-1", "rogue-1"} {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			code, body, err := e.call(ctx, from, http.MethodGet, order, nil)
			cancel()
			if err == nil && code < 300 {
				t.Fatalf("round %d: %s -> order answered %d %q with no policy at order's sidecar", i, from, code, body)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(w.Address, strconv.Itoa(mesh.PortInbound))+"/healthz", nil)
		req.Header.Set(mesh.HeaderTargetPort, "8080")
		if resp, err := adminClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode < 300 {
				t.Fatalf("round %d: plaintext to order's inbound answered %s", i, resp.Status)
			}
		}
		cancel()
	}
	t.Logf("no policy: %d rounds in %s, nothing served", rounds, time.Since(phase).Round(time.Millisecond))
	if got := e.faultStats(t, "order-1").Requests - appBefore; got != 0 {
		t.Fatalf("order's app served %d requests while its sidecar had no policy", got)
	}

	// The configuration arrives: rogue is denied from the first answer on,
	// api-gateway gets in.
	var rogueLeak atomic.Value
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			code, body, err := e.call(rctx, "rogue-1", http.MethodGet, order, nil)
			rcancel()
			if err == nil && code < 300 {
				rogueLeak.CompareAndSwap(nil, fmt.Sprintf("%d %q", code, body))
			}
		}
	}()
	if err := e.m.StartControlPlane(t.Context()); err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	took := e.waitStatus(t, "api-gateway-1", order, http.StatusOK, 20*time.Second)
	e.waitStatus(t, "rogue-1", order, http.StatusForbidden, 5*time.Second)
	cancel()
	<-done
	t.Logf("api-gateway allowed %s after the control plane came back", took.Round(time.Millisecond))
	if v := rogueLeak.Load(); v != nil {
		t.Errorf("rogue got through while the policy arrived: %v", v)
	}
	data, err := os.ReadFile(e.m.SidecarLogFile(w))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "authz: denied") {
		t.Error("order's new sidecar logged no denial for rogue")
	}

	t.Run("the control plane has nothing for the sidecar", func(t *testing.T) {
		testNoConfigForNode(t, e, w)
	})
}

// testNoConfigForNode: order-1's entry is renamed order-2 in the mesh
// file (same address and labels: the order Service still sends callers
// there) and order-1's sidecar restarts, so the (running) control plane
// has no configuration for node order-1. Peers with valid mesh
// certificates — the allowed api-gateway and rogue — call its inbound
// directly: nothing is served. When the entry comes back, api-gateway is
// served and rogue is denied from the first answer on.
func testNoConfigForNode(t *testing.T, e *authzEnv, w launch.Workload) {
	withOrder := authzMeshFile(t, e)
	e.writeFile(t, []byte(strings.Replace(string(withOrder), "name: order-1\n", "name: order-2\n", 1)))
	e.waitConfigMentions(t, "api-gateway-1.shop", "order-2.shop", 10*time.Second)
	if err := e.m.RestartSidecar(t.Context(), w.NodeID()); err != nil {
		t.Fatal(err)
	}

	td := e.m.TrustDomain()
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString(td), e.m.TrustBundleFile())
	if err != nil {
		t.Fatal(err)
	}
	a := authority(t, td, e.m.CADir(), time.Now)
	peer := func(sa string) *http.Client {
		svid := peerSVID(t, a, ca.Identity{Namespace: "shop", ServiceAccount: sa, Workload: sa + "-1"}, mesh.SPIFFEID(td, "shop", sa), time.Hour)
		tc := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString(td)))
		tc.NextProtos = []string{"h2"}
		tr := &http.Transport{Proxy: nil, TLSClientConfig: tc, ForceAttemptHTTP2: true, DisableKeepAlives: true}
		return &http.Client{Timeout: 2 * time.Second, Transport: tr}
	}
	gateway, rogue := peer("api-gateway"), peer("rogue")
	direct := func(c *http.Client) (int, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+w.InboundAddress()+"/healthz", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set(mesh.HeaderTargetPort, "8080")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	appBefore := e.faultStats(t, "order-1").Requests
	phase := time.Now()
	rounds := 0
	for ; rounds < 3 || time.Since(phase) < 1500*time.Millisecond; rounds++ {
		for name, c := range map[string]*http.Client{"api-gateway": gateway, "rogue": rogue} {
			if code, err := direct(c); err == nil && code < 300 {
				t.Fatalf("%s -> order's inbound answered %d with no configuration for order", name, code)
			}
		}
		time.Sleep(20 * time.Millisecond) // pacing of a bounded probe loop
	}
	if got := e.faultStats(t, "order-1").Requests - appBefore; got != 0 {
		t.Fatalf("order's app served %d requests while the control plane had nothing for its sidecar", got)
	}
	t.Logf("no configuration: %d rounds in %s, nothing served", rounds, time.Since(phase).Round(time.Millisecond))

	e.writeFile(t, withOrder)
	start := time.Now()
	for {
		if code, err := direct(rogue); err == nil && code < 300 {
			t.Fatalf("rogue served (%d) while order's configuration arrived", code)
		}
		code, err := direct(gateway)
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("api-gateway not served within 15s of the entry's return (last %d %v)", code, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval within a deadline
	}
	if code, err := direct(rogue); err != nil || code != http.StatusForbidden {
		t.Errorf("rogue after the configuration arrived: %d %v, want 403", code, err)
	}
	t.Logf("api-gateway served %s after order's entry came back", time.Since(start).Round(time.Millisecond))
}

// waitConfigMentions waits until the control plane's config for proxy
// contains what.
func (e *authzEnv) waitConfigMentions(t *testing.T, proxy, what string, deadline time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.m.ControlPlane().DebugAddress+"/debug/config_dump?proxy="+proxy, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := c.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if strings.Contains(string(body), what) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // poll interval within a deadline
	}
	t.Fatalf("the control plane's config for %s never mentioned %s within %s", proxy, what, deadline)
}

// authzMeshFile is the mesh file the test started with.
func authzMeshFile(t *testing.T, e *authzEnv) []byte {
	t.Helper()
	data, err := os.ReadFile(e.meshFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
