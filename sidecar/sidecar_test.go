package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

func TestMesh(t *testing.T) {
	e := newEnv(t)

	t.Run("every name form reaches the app through the peer's inbound", func(t *testing.T) {
		names := append(xdstest.ServiceDomains(svcPayment, ns, paymentPort, true), xdstest.ServiceDomains(svcPayment, ns, 80, true)...)
		if len(names) != 4+8 {
			t.Fatalf("domains = %v", names)
		}
		for _, name := range names {
			for _, viaProxy := range []bool{true, false} {
				form := "origin-form"
				if viaProxy {
					form = "absolute-form"
				}
				t.Run(form+" "+name, func(t *testing.T) {
					res := e.get(viaProxy, name, "/pay/ok?amount=3")
					if res.status != http.StatusOK {
						t.Fatalf("status %d: %s", res.status, res.body)
					}
					r := res.reply
					if r.App != "payment-0" || r.Host != name || r.Path != "/pay/ok" || r.Query != "amount=3" {
						t.Errorf("app saw %+v", r)
					}
					// The mesh headers never reach the app; the app hop
					// is HTTP/1.1.
					if r.TargetPort != "" || r.PeerIdentity != "" || r.Proto != "HTTP/1.1" {
						t.Errorf("app saw %+v", r)
					}
				})
			}
		}
		// Upper case works: the Host is matched lower-cased.
		if res := e.get(false, "Payment.SHOP:8080", "/"); res.status != http.StatusOK {
			t.Errorf("upper-case host: %d %s", res.status, res.body)
		}
	})

	t.Run("the peer hop is HTTP/2 multiplexed on one connection", func(t *testing.T) {
		// The server sidecar's inbound sees h2 requests; 20 concurrent
		// requests share the client sidecar's connection to it.
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if res := e.get(false, "payment:8080", "/"); res.status != http.StatusOK {
					t.Errorf("status %d: %s", res.status, res.body)
				}
			})
		}
		wg.Wait()
		conns := establishedTo(t, e.server.addr(mesh.PortInbound))
		if conns != 1 {
			t.Errorf("%d connections to the peer inbound, want 1", conns)
		}
	})

	t.Run("client-sent mesh and hop-by-hop headers are stripped", func(t *testing.T) {
		res := e.get(true, "payment.shop:8080", "/", mesh.HeaderTargetPort, "1", mesh.HeaderPeerIdentity, "spiffe://evil/ns/x/sa/y",
			"Connection", "X-Custom, keep-alive", "X-Custom", "hop", "Keep-Alive", "timeout=5")
		if res.status != http.StatusOK {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
		if r := res.reply; r.TargetPort != "" || r.PeerIdentity != "" || r.Custom != "" || r.Connection != "" {
			t.Errorf("app saw %+v", r)
		}
		// End-to-end headers pass.
		if res := e.get(true, "payment.shop:8080", "/", "X-Custom", "e2e"); res.reply.Custom != "e2e" {
			t.Errorf("X-Custom = %q", res.reply.Custom)
		}
	})

	t.Run("request bodies and streamed responses pass", func(t *testing.T) {
		body := strings.Repeat("b", 300<<10)
		req, _ := http.NewRequest("POST", "http://"+e.client.addr(mesh.PortOutbound)+"/upload", strings.NewReader(body))
		req.Host = "payment:8080"
		resp, err := e.plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r reply
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || r.BodyLen != len(body) {
			t.Errorf("app read %d bytes (%v), want %d", r.BodyLen, err, len(body))
		}

		req, _ = http.NewRequest("GET", "http://"+e.client.addr(mesh.PortOutbound)+"/stream", nil)
		req.Host = "payment:8080"
		resp, err = e.plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		var firstAt time.Duration
		start := time.Now()
		for sc.Scan() {
			if len(lines) == 0 {
				firstAt = time.Since(start)
			}
			lines = append(lines, sc.Text())
		}
		if len(lines) != 3 || lines[2] != "chunk 2" {
			t.Errorf("stream = %q", lines)
		}
		// The first chunk arrives before the app finished (40 ms later).
		if firstAt > 35*time.Millisecond {
			t.Logf("first chunk after %v: responses may be buffered", firstAt)
		}
	})

	t.Run("round robin spreads evenly over 3 endpoints", func(t *testing.T) {
		before := make([]int64, len(e.apps))
		for i, a := range e.apps {
			before[i] = a.hits.Load()
		}
		const n = 60
		for range n {
			if res := e.get(true, "inventory:9090", "/"); res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
		}
		for i, a := range e.apps {
			if got := a.hits.Load() - before[i]; got != n/3 {
				t.Errorf("app %s got %d of %d requests, want %d", a.name, got, n, n/3)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		deadIP := randomIP(t) // nothing listens there
		extra := services{
			VirtualHosts: []*route.VirtualHost{
				xdstest.ServiceVirtualHost("down", ns, 80, true),
				xdstest.ServiceVirtualHost("dead", ns, 80, true),
				xdstest.ServiceVirtualHost("deadpeer", ns, 80, true),
			},
			Clusters: []*cluster.Cluster{
				xdstest.OutboundCluster("down", ns, 80),
				xdstest.OutboundCluster("dead", ns, 80),
				xdstest.OutboundCluster("deadpeer", ns, 80),
			},
			Endpoints: []*endpoint.ClusterLoadAssignment{
				xdstest.Assignment(mesh.OutboundClusterName(80, mesh.ServiceHost("down", ns, mesh.DefaultClusterDomain)),
					xdstest.Endpoint{IP: e.server.ip, Port: 1, Health: core.HealthStatus_UNHEALTHY},
					xdstest.Endpoint{IP: e.server.ip, Port: 2, Health: core.HealthStatus_DRAINING}),
				xdstest.Assignment(mesh.OutboundClusterName(80, mesh.ServiceHost("dead", ns, mesh.DefaultClusterDomain)),
					xdstest.Endpoint{IP: deadIP, Port: 80}),
				xdstest.Assignment(mesh.OutboundClusterName(80, mesh.ServiceHost("deadpeer", ns, mesh.DefaultClusterDomain)),
					xdstest.Endpoint{IP: deadIP, Port: 80, TunnelPort: mesh.PortInbound}),
			},
		}
		e.pushClient(e.tunnelEndpoints(e.apps[0]), e.tunnelEndpoints(e.apps...), extra)
		e.eventually("the new services", func() bool {
			return !strings.Contains(e.get(false, "down", "/").body, "not in the mesh registry")
		})

		tests := []struct {
			host   string
			status int
			body   string
		}{
			{"nope.shop:8080", http.StatusBadGateway, `host "nope.shop:8080" is not in the mesh registry (outbound policy REGISTRY_ONLY)`},
			{"payment.shop:9999", http.StatusBadGateway, "is not in the mesh registry"},
			{"down", http.StatusServiceUnavailable, "no healthy endpoints for outbound|80||down.shop.svc.cluster.local"},
			{"dead", http.StatusBadGateway, "upstream connect error: " + deadIP + ":80: connect: connection refused"},
			{"deadpeer", http.StatusBadGateway, "upstream connect error: " + deadIP + ":15006"},
		}
		for _, tc := range tests {
			t.Run(tc.host, func(t *testing.T) {
				res := e.get(false, tc.host, "/")
				if res.status != tc.status || !strings.HasPrefix(res.body, "weft: ") || !strings.Contains(res.body, tc.body) {
					t.Errorf("GET %s = %d %q, want %d with %q", tc.host, res.status, res.body, tc.status, tc.body)
				}
			})
		}

		// The server's inbound refuses ports it has no chain for.
		for _, tc := range []struct {
			port   string
			status int
		}{{"", http.StatusMisdirectedRequest}, {"1", http.StatusMisdirectedRequest}, {"x", http.StatusBadRequest}} {
			req, _ := http.NewRequest("GET", "http://"+e.server.addr(mesh.PortInbound)+"/", nil)
			if tc.port != "" {
				req.Header.Set(mesh.HeaderTargetPort, tc.port)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.HasPrefix(string(b), "weft: ") {
				t.Errorf("inbound with target port %q = %d %q, want %d", tc.port, resp.StatusCode, b, tc.status)
			}
		}
		e.pushClient(e.tunnelEndpoints(e.apps[0]), e.tunnelEndpoints(e.apps...))
	})

	t.Run("endpoints follow EDS", func(t *testing.T) {
		// payment moves to app 1, then to an app without a sidecar
		// (dialled directly), then back.
		e.pushClient(e.tunnelEndpoints(e.apps[1]), e.tunnelEndpoints(e.apps...))
		e.eventually("payment on app 1", func() bool { return e.get(true, "payment:8080", "/").reply.App == "payment-1" })
		for range 5 {
			if got := e.get(true, "payment:8080", "/").reply.App; got != "payment-1" {
				t.Fatalf("after EDS change: served by %s", got)
			}
		}

		direct := startApp(t, "direct", randomIP(t))
		e.pushClient([]xdstest.Endpoint{{IP: direct.ip, Port: direct.port}}, e.tunnelEndpoints(e.apps...))
		e.eventually("payment on the direct app", func() bool { return e.get(true, "payment:8080", "/").reply.App == "direct" })
		if r := e.get(true, "payment.shop:8080", "/d").reply; r.Host != "payment.shop:8080" || r.TargetPort != "" || r.Path != "/d" {
			t.Errorf("direct app saw %+v", r)
		}

		e.pushClient(e.tunnelEndpoints(e.apps[0]), e.tunnelEndpoints(e.apps...))
		e.eventually("payment back on app 0", func() bool { return e.get(true, "payment:8080", "/").reply.App == "payment-0" })
	})

	t.Run("a NACKed update keeps traffic on the last good config", func(t *testing.T) {
		mark := e.cp.Mark()
		bad := services{
			VirtualHosts: []*route.VirtualHost{xdstest.ServiceVirtualHost("ghost", ns, 80, true)}, // no cluster
		}
		e.pushClient(e.tunnelEndpoints(e.apps[1]), e.tunnelEndpoints(e.apps...), bad)
		nack := e.cp.WaitRequest(mark, waitFor, xdstest.NACK(xdsclient.TypeRoute))
		if !strings.Contains(nack.GetErrorDetail().GetMessage(), `cluster "outbound|80||ghost.shop.svc.cluster.local" not found`) {
			t.Errorf("NACK reason = %q", nack.GetErrorDetail().GetMessage())
		}
		if res := e.get(false, "ghost", "/"); res.status != http.StatusBadGateway {
			t.Errorf("ghost: %d %s", res.status, res.body)
		}
		if res := e.get(false, "payment:8080", "/"); res.status != http.StatusOK {
			t.Errorf("payment after NACK: %d %s", res.status, res.body)
		}
		e.pushClient(e.tunnelEndpoints(e.apps[0]), e.tunnelEndpoints(e.apps...))
		e.eventually("a good config again", func() bool { return e.get(true, "payment:8080", "/").reply.App == "payment-0" })
	})

	t.Run("admin and health", func(t *testing.T) {
		for _, u := range []string{
			"http://" + e.client.addr(mesh.PortAdmin) + "/ready",
			"http://" + e.client.addr(mesh.PortHealth) + "/healthz/ready",
			"http://" + e.client.addr(mesh.PortAdmin) + "/debug/pprof/",
		} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d", u, resp.StatusCode)
			}
		}
		resp, err := http.Get("http://" + e.client.addr(mesh.PortAdmin) + "/config_dump")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var dump struct {
			Versions  xdsclient.Versions `json:"versions"`
			Status    xdsclient.Status   `json:"status"`
			Listeners []map[string]any   `json:"listeners"`
			Clusters  []map[string]any   `json:"clusters"`
			Routes    []map[string]any   `json:"routes"`
			Endpoints []map[string]any   `json:"endpoints"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&dump); err != nil {
			t.Fatal(err)
		}
		if len(dump.Listeners) != 2 || len(dump.Clusters) != 3 || len(dump.Routes) != 1 || len(dump.Endpoints) != 3 {
			t.Errorf("config_dump has %d listeners, %d clusters, %d routes, %d endpoints",
				len(dump.Listeners), len(dump.Clusters), len(dump.Routes), len(dump.Endpoints))
		}
		var names []string
		for _, c := range dump.Clusters {
			names = append(names, c["name"].(string))
		}
		if want := []string{paymentCluster, payment80Cluster, invCluster}; strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("config_dump clusters = %v, want %v (sorted by name)", names, want)
		}
		if !dump.Status.Connected || dump.Versions.Clusters == "" {
			t.Errorf("config_dump: status %+v, versions %+v", dump.Status, dump.Versions)
		}
	})
}

// establishedTo counts the TCP connections established to addr, from
// /proc/net/tcp (Linux).
func establishedTo(t *testing.T, addr string) int {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host).To4()
	p, _ := strconv.Atoi(port)
	// /proc/net/tcp writes the IPv4 address as a little-endian hex word.
	want := strings.ToUpper(hex4(ip[3], ip[2], ip[1], ip[0]) + ":" + strconv.FormatInt(int64(p)|0x10000, 16)[1:])
	b, err := readFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("cannot read /proc/net/tcp: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// local_address rem_address st: count client ends, state 01.
		if len(f) > 3 && strings.EqualFold(f[2], want) && f[3] == "01" {
			n++
		}
	}
	return n
}

func hex4(b ...byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 8)
	for _, x := range b {
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

func TestListenersFollowLDS(t *testing.T) {
	cp := xdstest.Start(t, "127.0.0.1:0")
	ip := randomIP(t)
	p := startSidecar(t, cp, clientNode, ns, ip)
	a := startApp(t, "app", ip)
	node := mesh.NodeID(clientNode, ns)
	inbound := func(addrIP string, port uint32) xdstest.Resources {
		l := xdstest.InboundListener(addrIP, a.port)
		l.Address.GetSocketAddress().PortSpecifier = &core.SocketAddress_PortValue{PortValue: port}
		return xdstest.Resources{
			Listeners: []*listener.Listener{xdstest.OutboundListener(ip), l},
			Routes:    []*route.RouteConfiguration{xdstest.OutboundRoute()},
			Clusters:  []*cluster.Cluster{xdstest.InboundCluster(a.ip, a.port)},
		}
	}
	call := func(addr string) (int, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set(mesh.HeaderTargetPort, strconv.Itoa(int(a.port)))
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	eventually := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Not ready, nothing bound before the first config.
	var code int
	eventually("the admin server", func() bool {
		resp, err := http.Get("http://" + p.addr(mesh.PortAdmin) + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		code = resp.StatusCode
		return true
	})
	if code != http.StatusServiceUnavailable {
		t.Errorf("/ready before config = %d, want 503", code)
	}
	if _, err := net.DialTimeout("tcp", p.addr(mesh.PortOutbound), time.Second); err == nil {
		t.Error("outbound bound before any config")
	}

	cp.Set(node, "1", inbound(ip, mesh.PortInbound))
	waitReady(t, p)
	// Ready means the stream delivered a configuration: the gauge reads
	// the client's status when scraped, so it says connected at once.
	if m := scrape(t, "http://"+p.addr(mesh.PortHealth)+"/metrics"); !strings.Contains(m, "\nweft_xds_connected 1\n") {
		t.Errorf("weft_xds_connected once ready:\n%s", m)
	}
	first := p.addr(mesh.PortInbound)
	if code, err := call(first); err != nil || code != http.StatusOK {
		t.Fatalf("inbound at %s: %d %v", first, code, err)
	}

	// The address changes: the new one serves, the old one closes.
	cp.Set(node, "2", inbound(ip, 15106))
	moved := net.JoinHostPort(ip, "15106")
	eventually("the moved inbound listener", func() bool { code, err := call(moved); return err == nil && code == http.StatusOK })
	eventually("the old inbound listener to close", func() bool { _, err := call(first); return err != nil })

	// Removed: closed gracefully; an in-flight request finishes.
	a.delay.Store(int64(300 * time.Millisecond))
	done := make(chan int, 1)
	go func() { code, _ := call(moved); done <- code }()
	time.Sleep(100 * time.Millisecond)
	r := inbound(ip, 15106)
	r.Listeners = r.Listeners[:1]
	cp.Set(node, "3", r)
	if code := <-done; code != http.StatusOK {
		t.Errorf("in-flight request on a removed listener = %d, want 200", code)
	}
	eventually("the removed listener to close", func() bool { _, err := call(moved); return err != nil })
}

// scrape returns the body of a GET of url.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	e.apps[0].delay.Store(int64(300 * time.Millisecond))
	done := make(chan result, 1)
	go func() { done <- e.get(false, "payment:8080", "/slow") }()
	time.Sleep(100 * time.Millisecond)

	stopped := make(chan struct{})
	go func() { e.client.stop(t); close(stopped) }()
	// Draining: not ready any more, in-flight request completes.
	e.eventually("/ready to turn 503", func() bool {
		resp, err := http.Get("http://" + e.client.addr(mesh.PortHealth) + "/healthz/ready")
		if err != nil {
			return true // already gone
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if res := <-done; res.status != http.StatusOK {
		t.Errorf("in-flight request during shutdown = %d %s", res.status, res.body)
	}
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
	if _, err := net.DialTimeout("tcp", e.client.addr(mesh.PortOutbound), time.Second); err == nil {
		t.Error("outbound still accepts after shutdown")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Namespace: "shop", IP: "127.0.0.1"},
		{Workload: "order", IP: "127.0.0.1"},
		{Workload: "order", Namespace: "shop", IP: "localhost"},
	} {
		if err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded", cfg)
		}
	}
	if _, err := (Config{Workload: "order", Namespace: "shop", IP: "127.0.0.9"}).withDefaults(); err == nil {
		t.Error("a config without a ca bundle and token file (and not plaintext) was accepted")
	}
	c, err := Config{Workload: "order", Namespace: "shop", IP: "127.0.0.9", Plaintext: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddress != "127.0.0.9:15000" || c.HealthAddress != "127.0.0.9:15020" || c.XDSAddress != "127.0.0.1:15012" || c.ServiceAccount != "default" {
		t.Errorf("defaults = %+v", c)
	}
}
