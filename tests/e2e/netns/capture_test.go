package netns

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/examples/shop/app"
	"github.com/weftmesh/weft/tests/netnsharness"
)

const (
	ns          = "shop"
	appPort     = 8080
	debugPort   = 15014
	echoPort    = 9000
	trustDomain = mesh.DefaultTrustDomain
)

// pod is one workload of the test mesh.
type pod struct {
	Name, App, SA, Role string
	Serving             string // payment only: "yes"/"no"
	IP                  netip.Addr
	ns                  *netnsharness.NS
	sidecar             *netnsharness.Proc
}

type meshEnv struct {
	t        *testing.T
	net      *netnsharness.Net
	dir      string
	meshFile string
	pods     map[string]*pod
	order    []string
	cluster  map[string]netip.Addr // service -> ClusterIP
	cp       *netnsharness.Proc
	hosts    map[string]netip.Addr
}

// svc is one Service of the test mesh.
type svc struct {
	Name, PortName string
	IP             netip.Addr
	Port           int
}

const meshTmpl = `{{range .Services}}apiVersion: v1
kind: Service
metadata: {name: {{.Name}}, namespace: shop}
spec:
  clusterIP: {{.IP}}
  selector: {app: {{.Name}}{{if eq .Name "payment"}}, serving: "yes"{{end}}}
  ports: [{name: {{.PortName}}, port: {{.Port}}, targetPort: {{.PortName}}}]
---
{{end}}{{range .Pods}}apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: {{.Name}}
  namespace: shop
  labels: {app: {{.App}}{{if .Serving}}, serving: "{{.Serving}}"{{end}}}
spec:
  address: {{.IP}}
  serviceAccount: {{.SA}}
{{if .Role}}  ports: [{name: {{if eq .Role "echo"}}tcp, port: 9000{{else}}http, port: 8080{{end}}}]
{{end}}---
{{end}}apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-callers, namespace: shop}
spec:
  selector: {matchLabels: {app: payment}}
  action: ALLOW
  rules:
    - from:
        - serviceAccounts: [order, client]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: echo-callers, namespace: shop}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
    - from:
        - serviceAccounts: [client]
`

func (e *meshEnv) writeMesh() {
	e.t.Helper()
	var pods []*pod
	for _, n := range e.order {
		pods = append(pods, e.pods[n])
	}
	var b bytes.Buffer
	var svcs []svc
	for _, name := range []string{"order", "payment", "inventory", "echo"} {
		sv := svc{Name: name, PortName: "http", IP: e.cluster[name], Port: appPort}
		if name == "echo" {
			sv.PortName, sv.Port = "tcp", echoPort
		}
		svcs = append(svcs, sv)
	}
	if err := template.Must(template.New("mesh").Parse(meshTmpl)).Execute(&b, map[string]any{"Services": svcs, "Pods": pods}); err != nil {
		e.t.Fatal(err)
	}
	tmp := e.meshFile + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil { //nolint:gosec // G306: test file.
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.meshFile); err != nil {
		e.t.Fatal(err)
	}
}

// startMesh builds the namespaces, rules, control plane, sidecars and apps.
func startMesh(t *testing.T) *meshEnv {
	netnsharness.Require(t)
	n := netnsharness.New(t)
	// Not t.TempDir: its parent is 0700 and the proxy uid reads files here.
	dir, err := os.MkdirTemp("", "weft-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // G302: read by the proxy uid.
		t.Fatal(err)
	}
	e := &meshEnv{
		t: t, net: n, dir: dir, meshFile: filepath.Join(dir, "mesh.yaml"), pods: map[string]*pod{},
		cluster: map[string]netip.Addr{}, hosts: map[string]netip.Addr{},
	}
	// ClusterIPs: virtual, never routed anywhere (capture redirects them).
	for i, svc := range []string{"order", "payment", "inventory", "echo"} {
		ip := netip.AddrFrom4([4]byte{10, 96, 0, byte(10 + i)})
		e.cluster[svc] = ip
		for _, h := range []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + trustDomain} {
			e.hosts[h] = ip
		}
	}
	for _, p := range []*pod{
		{Name: "order-1", App: "order", SA: "order", Role: "order"},
		{Name: "payment-1", App: "payment", SA: "payment", Role: "payment", Serving: "yes"},
		{Name: "payment-2", App: "payment", SA: "payment", Role: "payment", Serving: "no"},
		{Name: "inventory-1", App: "inventory", SA: "inventory", Role: "inventory"},
		{Name: "echo-1", App: "echo", SA: "echo", Role: "echo"},
		{Name: "client-1", App: "client", SA: "client"},
		{Name: "intruder-1", App: "intruder", SA: "intruder"},
	} {
		p.ns = n.AddPod(p.Name, e.hosts)
		p.IP = p.ns.IP
		e.pods[p.Name] = p
		e.order = append(e.order, p.Name)
	}
	e.writeMesh()

	// Identity: the mesh CA and one join token per workload.
	caDir := filepath.Join(dir, "ca")
	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	if _, err := ca.Open(t.Context(), td, ca.NewDirStore(caDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(caDir, 0o755); err != nil { //nolint:gosec // G302: the bundle is public.
		t.Fatal(err)
	}
	bundle := filepath.Join(caDir, ca.FileBundle)
	if err := os.Chmod(bundle, 0o644); err != nil { //nolint:gosec // G302: the bundle is public.
		t.Fatal(err)
	}
	tokens := ca.NewJoinTokens(nil)
	tokenFiles := map[string]string{}
	for _, name := range e.order {
		p := e.pods[name]
		tok, err := tokens.Mint(ca.Identity{Namespace: ns, ServiceAccount: p.SA, Workload: p.Name}, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, p.Name+".token")
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, mesh.ProxyUID, mesh.ProxyUID); err != nil {
			t.Fatal(err)
		}
		tokenFiles[p.Name] = f
	}
	joinTokens := filepath.Join(caDir, "join-tokens.json")
	if err := tokens.WriteFile(joinTokens); err != nil {
		t.Fatal(err)
	}

	// Control plane in the hub, on the bridge address.
	xds := net.JoinHostPort(n.Hub.IP.String(), strconv.Itoa(mesh.PortXDS))
	e.cp = n.Hub.Start("control-plane", dir, 0, filepath.Join(binDir, mesh.BinaryControlPlane),
		"--registry=file", "--file="+e.meshFile, "--xds-address="+xds,
		"--debug-address=127.0.0.1:"+strconv.Itoa(debugPort), "--debounce=50ms",
		"--ca-dir="+caDir, "--join-tokens="+joinTokens, "--mtls-mode=STRICT", "--trust-domain="+trustDomain)
	e.waitHTTP(n.Hub, "http://127.0.0.1:"+strconv.Itoa(debugPort)+"/healthz", e.cp, 20*time.Second)

	// Each pod: the init step's real rules (twice: idempotent), the
	// sidecar as the proxy uid, the app.
	for _, name := range e.order {
		p := e.pods[name]
		var first string
		for i := range 2 {
			if out, err := p.ns.Run(sidecarBin, mesh.SidecarInitCommand); err != nil {
				t.Fatalf("%s: weft-sidecar init: %v\n%s", name, err, out)
			}
			saved, err := p.ns.Run("iptables-save", "-t", "nat")
			if err != nil {
				t.Fatalf("%s: iptables-save: %v\n%s", name, err, saved)
			}
			rules := weftRules(string(saved))
			if i == 0 {
				first = rules
				if !strings.Contains(rules, "-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001") {
					t.Fatalf("%s: no outbound redirect in\n%s", name, saved)
				}
			} else if rules != first {
				t.Fatalf("%s: init is not idempotent:\nfirst:\n%s\nsecond:\n%s", name, first, rules)
			}
		}
		// The injector's rewritten probes: the kubelet asks the health port.
		probes := fmt.Sprintf(`{%q: {"port": %d, "path": "/healthz", "scheme": "HTTP", "host": %q}}`,
			mesh.AppProbePath(p.App, "readyz"), appPort, p.IP.String())
		p.sidecar = p.ns.Start("sidecar-"+name, dir, mesh.ProxyUID, sidecarBin,
			"--app-probes="+probes, "--workload="+p.Name, "--namespace="+ns, "--service-account="+p.SA, "--ip="+p.IP.String(),
			"--xds-address="+xds, "--capture", "--ca-bundle="+bundle, "--token-file="+tokenFiles[name],
			"--trust-domain="+trustDomain)
		if p.Role == "echo" {
			// A raw TCP, server-first app: this test binary as a helper.
			p.ns.Start("app-"+name, dir, 0, "env", envEcho+"="+net.JoinHostPort(p.IP.String(), strconv.Itoa(echoPort))+","+p.Name, os.Args[0])
		} else if p.Role != "" {
			args := []string{"--role=" + p.Role, "--instance=" + p.Name, "--listen=" + net.JoinHostPort(p.IP.String(), strconv.Itoa(appPort))}
			if p.Role == "order" {
				// Plain requests to Service names: /etc/hosts gives the
				// ClusterIP, capture does the rest.
				args = append(args, "--payment-url=http://payment:8080"+app.PathPay, "--inventory-url=http://inventory.shop:8080"+app.PathReserve)
			}
			p.ns.Start("app-"+name, dir, 0, append([]string{filepath.Join(binDir, "shop")}, args...)...)
		}
	}
	for _, name := range e.order {
		p := e.pods[name]
		e.waitHTTP(p.ns, "http://"+net.JoinHostPort(p.IP.String(), strconv.Itoa(mesh.PortHealth))+mesh.HealthReadyPath, p.sidecar, 30*time.Second)
	}
	return e
}

func weftRules(saved string) string {
	var out []string
	for l := range strings.SplitSeq(saved, "\n") {
		if strings.HasPrefix(l, "-A ") && strings.Contains(l, "WEFT_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// client is an HTTP client whose connections start inside from: the test
// acts as an app in that pod. Names resolve like the pod's /etc/hosts.
func (e *meshEnv) client(from *netnsharness.NS) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				if ip, ok := e.hosts[host]; ok {
					addr = net.JoinHostPort(ip.String(), port)
				}
				return from.Dial(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 16,
		},
	}
}

func (e *meshEnv) waitHTTP(from *netnsharness.NS, url string, proc *netnsharness.Proc, d time.Duration) {
	e.t.Helper()
	c := e.client(from)
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if proc.Exited() {
			e.t.Fatalf("%s exited:\n%s", proc.Name, netnsharness.TailLog(proc.Log, 3000))
		}
		code, body, err := get(e.t.Context(), c, url)
		if err == nil && code == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s %v", code, body, err)
		time.Sleep(50 * time.Millisecond) // poll interval within a deadline
	}
	e.t.Fatalf("%s not ready after %s (last: %s):\n%s", url, d, last, netnsharness.TailLog(proc.Log, 3000))
}

func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (e *meshEnv) reply(c *http.Client, url string) (int, app.Reply, error) {
	code, body, err := get(e.t.Context(), c, url)
	var r app.Reply
	if err == nil && code == http.StatusOK {
		err = json.Unmarshal([]byte(body), &r)
	}
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, strings.TrimSpace(body))
	}
	return code, r, err
}

// waitStatus polls url from c until it answers want.
func (e *meshEnv) waitStatus(c *http.Client, url string, want int, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := get(e.t.Context(), c, url)
		if err == nil && code == want {
			return body, nil
		}
		last = fmt.Sprintf("%d %q %v", code, body, err)
		time.Sleep(50 * time.Millisecond) // poll interval within a deadline
	}
	return "", fmt.Errorf("%s: want %d within %s, last %s", url, want, d, last)
}

func (e *meshEnv) dumpOnFailure() {
	e.t.Cleanup(func() {
		if !e.t.Failed() {
			return
		}
		for _, name := range append([]string{"control-plane"}, e.order...) {
			for _, f := range []string{name, "sidecar-" + name, "app-" + name} {
				path := filepath.Join(e.dir, f+".log")
				if _, err := os.Stat(path); err == nil {
					e.t.Logf("--- %s\n%s", f, netnsharness.TailLog(path, 2500))
				}
			}
		}
	})
}

func TestCapture(t *testing.T) {
	e := startMesh(t)
	e.dumpOnFailure()
	client := e.client(e.pods["client-1"].ns)
	pay := func(host string) string {
		return "http://" + net.JoinHostPort(host, strconv.Itoa(appPort)) + app.PathPay
	}

	t.Run("by ClusterIP", func(t *testing.T) {
		if _, err := e.waitStatus(client, pay(e.cluster["payment"].String()), http.StatusOK, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		_, r, err := e.reply(client, pay(e.cluster["payment"].String()))
		if err != nil || r.Instance != "payment-1" {
			t.Fatalf("reply %+v, %v; want payment-1", r, err)
		}
	})
	t.Run("apps call each other by Service name", func(t *testing.T) {
		url := "http://order.shop:8080" + app.PathOrder
		if _, err := e.waitStatus(client, url, http.StatusOK, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		_, r, err := e.reply(client, url)
		if err != nil {
			t.Fatal(err)
		}
		if r.Instance != "order-1" || len(r.Calls) != 2 {
			t.Fatalf("order reply %+v", r)
		}
		for _, c := range r.Calls {
			if c.Status != http.StatusOK || c.Reply == nil {
				t.Errorf("order -> %s: %+v", c.URL, c)
			}
		}
	})
	t.Run("peer pod IP goes through the sidecar over mTLS", func(t *testing.T) {
		// Without a sidecar (the hub) the captured inbound refuses
		// plaintext (STRICT): the app never sees it.
		code, body, err := get(t.Context(), e.client(e.net.Hub), pay(e.pods["payment-1"].IP.String()))
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "mTLS only") {
			t.Fatalf("plaintext from outside the mesh: %d %q %v; want 403 mTLS only", code, body, err)
		}
		// From a mesh pod the same address works: its sidecar caught it
		// and tunnelled it with mTLS (the payment policy admits client).
		_, r, err := e.reply(client, pay(e.pods["payment-1"].IP.String()))
		if err != nil || r.Instance != "payment-1" {
			t.Fatalf("client -> payment-1 pod IP: %+v %v", r, err)
		}
		_, r, err = e.reply(client, pay(e.pods["payment-2"].IP.String()))
		if err == nil {
			t.Fatalf("client -> payment-2 pod IP (not a Service endpoint yet): %+v; want a refusal", r)
		}
	})
	t.Run("kubelet probes through the health port in plaintext", func(t *testing.T) {
		hub := e.client(e.net.Hub)
		base := "http://" + net.JoinHostPort(e.pods["payment-1"].IP.String(), strconv.Itoa(mesh.PortHealth))
		if code, body, err := get(t.Context(), hub, base+mesh.AppProbePath("payment", "readyz")); err != nil || code != http.StatusOK {
			t.Errorf("app probe: %d %q %v; want 200", code, body, err)
		}
		if code, _, err := get(t.Context(), hub, base+mesh.AppProbePath("payment", "livez")); err != nil || code != http.StatusNotFound {
			t.Errorf("unknown app probe: %d %v; want 404", code, err)
		}
	})
	t.Run("policy applies to captured traffic", func(t *testing.T) {
		intruder := e.client(e.pods["intruder-1"].ns)
		for _, url := range []string{pay(e.cluster["payment"].String()), pay(e.pods["payment-1"].IP.String()), "http://payment.shop:8080" + app.PathPay} {
			code, body, err := get(t.Context(), intruder, url)
			if err != nil || code != http.StatusForbidden || !strings.Contains(body, "RBAC") {
				t.Errorf("intruder -> %s: %d %q %v; want 403 RBAC", url, code, body, err)
			}
		}
	})
	t.Run("raw TCP through the mTLS tunnel, with authorization", func(t *testing.T) {
		echo := net.JoinHostPort(e.cluster["echo"].String(), strconv.Itoa(echoPort))
		// Server-first: the client waits for the greeting before it writes.
		var got string
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got, err = tcpEcho(t.Context(), e.pods["client-1"].ns, echo, "ping"); err == nil {
				break
			}
		}
		if err != nil || got != "hello from echo-1|echo:ping" {
			t.Fatalf("client -> echo ClusterIP: %q %v", got, err)
		}
		if got, err := tcpEcho(t.Context(), e.pods["client-1"].ns, net.JoinHostPort(e.pods["echo-1"].IP.String(), strconv.Itoa(echoPort)), "pod"); err != nil || got != "hello from echo-1|echo:pod" {
			t.Errorf("client -> echo pod IP: %q %v", got, err)
		}
		// Denied by policy at echo's inbound: the intruder's app sees a
		// TCP reset (not a clean close), and echo's sidecar logs and
		// counts the denial with the deciding rule and the peer identity.
		if got, err := tcpEcho(t.Context(), e.pods["intruder-1"].ns, echo, "x"); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("intruder -> echo: %q, %v; want the connection reset by policy", got, err)
		}
		const denyRule = "weft.authz.allow:default-deny"
		logData, err := os.ReadFile(filepath.Join(e.dir, "sidecar-echo-1.log"))
		if err != nil {
			t.Fatal(err)
		}
		var logged bool
		for l := range strings.SplitSeq(string(logData), "\n") {
			if strings.Contains(l, "authz: denied") && strings.Contains(l, denyRule) &&
				strings.Contains(l, mesh.SPIFFEID(trustDomain, ns, "intruder")) {
				logged = true
			}
		}
		if !logged {
			t.Errorf("echo's sidecar did not log the denial of intruder by %s", denyRule)
		}
		metricsURL := "http://" + net.JoinHostPort(e.pods["echo-1"].IP.String(), strconv.Itoa(mesh.PortHealth)) + "/metrics"
		if code, body, err := get(t.Context(), e.client(e.net.Hub), metricsURL); err != nil || code != http.StatusOK ||
			!strings.Contains(body, mesh.MetricAuthzDenied+`{policy="`+denyRule+`"}`) {
			t.Errorf("echo's metrics (%d %v) do not count the denial by %s", code, err, denyRule)
		}
		if err := e.checkTCPMetrics(t.Context(), echo); err != nil {
			t.Error(err)
		}
		// Not a mesh endpoint: dialled directly by the sidecar.
		ln, err := e.net.Hub.Listen("tcp", net.JoinHostPort(e.net.Hub.IP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go serveEcho(ln, "hub")
		if got, err := tcpEcho(t.Context(), e.pods["client-1"].ns, ln.Addr().String(), "out"); err != nil || got != "hello from hub|echo:out" {
			t.Errorf("client -> non-mesh %s: %q %v", ln.Addr(), got, err)
		}
	})
	t.Run("scaling moves traffic within 1s without failures", func(t *testing.T) {
		url := pay(e.cluster["payment"].String())
		l := startLoad(e, client, url, 4)
		defer l.stop()
		e.pods["payment-2"].Serving = "yes"
		e.writeMesh()
		up, err := l.waitServed("payment-2", true, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		e.pods["payment-2"].Serving = "no"
		e.writeMesh()
		down, err := l.waitServed("payment-2", false, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		l.stop()
		ok, failed := l.ok.Load(), l.failed.Load()
		t.Logf("scale up: payment-2 served %s after the edit; scale down: drained %s after the edit; %d requests, %d failed", up, down, ok, failed)
		if failed != 0 {
			t.Errorf("%d failed requests (first: %v)", failed, l.firstErr())
		}
		if up > time.Second || down > time.Second {
			t.Errorf("traffic moved in %s / %s; want within 1s", up, down)
		}
	})
}

// load sends requests in a loop and remembers who served the last ones.
type load struct {
	e      *meshEnv
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64

	mu    sync.Mutex
	err   error
	seen  []string // instance of each request, in completion order
	times []time.Time
}

func startLoad(e *meshEnv, c *http.Client, url string, workers int) *load {
	ctx, cancel := context.WithCancel(e.t.Context())
	l := &load{e: e, cancel: cancel}
	for range workers {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				code, body, err := get(ctx, c, url)
				if ctx.Err() != nil {
					return
				}
				var r app.Reply
				if err == nil && code == http.StatusOK {
					err = json.Unmarshal([]byte(body), &r)
				} else if err == nil {
					err = fmt.Errorf("status %d: %s", code, body)
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if l.err == nil {
						l.err = err
					}
				} else {
					l.ok.Add(1)
					l.seen = append(l.seen, r.Instance)
					l.times = append(l.times, time.Now())
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

func (l *load) firstErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// waitServed waits until instance serves (serving) or until 20 requests
// in a row completed without it (!serving), and returns the time from the
// call to the first such request.
func (l *load) waitServed(instance string, serving bool, d time.Duration) (time.Duration, error) {
	start := time.Now()
	l.mu.Lock()
	from := len(l.seen)
	l.mu.Unlock()
	for time.Since(start) < d {
		l.mu.Lock()
		streak := 0
		for i := from; i < len(l.seen); i++ {
			if serving && l.seen[i] == instance {
				at := l.times[i].Sub(start)
				l.mu.Unlock()
				return at, nil
			}
			if !serving {
				if l.seen[i] == instance {
					streak = 0
					continue
				}
				streak++
				if streak == 20 {
					at := l.times[i-19].Sub(start)
					l.mu.Unlock()
					return at, nil
				}
			}
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // poll interval within a deadline
	}
	return 0, fmt.Errorf("%s serving=%v not seen within %s", instance, serving, d)
}

// tcpEcho connects from ns to addr, reads the greeting line, sends msg and
// reads the echo: "greeting|echo".
func tcpEcho(ctx context.Context, from *netnsharness.NS, addr, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	hello, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	reply, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("echo: %w", err)
	}
	return strings.TrimSpace(hello) + "|" + strings.TrimSpace(reply), nil
}
