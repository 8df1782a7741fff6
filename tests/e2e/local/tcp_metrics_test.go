package local

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/metricstest"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/launch"
)

// tcpEchoServer serves a server-first line protocol on addr until the
// test ends: "hello <name>\n", then "echo:<line>\n" for every line; it
// closes the connection when the client half-closes.
func tcpEchoServer(t *testing.T, addr, name string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, "hello "+name+"\n"); err != nil {
					return
				}
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "echo:"+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// tcpExchange opens a CONNECT tunnel to target through the sidecar's
// outbound proxy at proxyAddr, reads the greeting, sends msg, reads the
// echo, half-closes and reads to the end. It returns the bytes it wrote
// into the tunnel and read from it (the CONNECT exchange itself excluded).
func tcpExchange(ctx context.Context, proxyAddr, target, msg string) (sent, received int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = c.Close() }()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return 0, 0, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, 0, fmt.Errorf("CONNECT %s: %s %q", target, resp.Status, b)
	}
	hello, err := br.ReadString('\n')
	if err != nil {
		return 0, len(hello), fmt.Errorf("greeting: %w", err)
	}
	n, err := io.WriteString(c, msg+"\n")
	if err != nil {
		return n, len(hello), err
	}
	echo, err := br.ReadString('\n')
	if err != nil {
		return n, len(hello) + len(echo), fmt.Errorf("echo: %w", err)
	}
	if echo != "echo:"+msg+"\n" {
		return n, len(hello) + len(echo), fmt.Errorf("echo %q, want %q", echo, "echo:"+msg+"\n")
	}
	_ = c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil {
		return n, len(hello) + len(echo) + len(rest), fmt.Errorf("after half-close: %w", err)
	}
	return n, len(hello) + len(echo) + len(rest), nil
}

// tcpDelta scrapes the weft_tcp_* series of the sidecars (name -> health
// address) before and after run, and returns what changed and what was
// wanted, once want(changed) is reached or a 10 s deadline passes
// (connections are counted closed a moment after the client sees the end).
func tcpDelta(t *testing.T, health map[string]string, want func(got map[string]float64) map[string]float64, run func()) (got, wanted map[string]float64) {
	t.Helper()
	scrape := func() map[string]float64 {
		all := map[string]float64{}
		for wl, addr := range health {
			s, err := seriesAt(t.Context(), addr, "weft_tcp_")
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range s {
				all[wl+" "+k] = v
			}
		}
		return all
	}
	// Quiet first: every earlier connection counted closed.
	before := scrape()
	for deadline := time.Now().Add(10 * time.Second); metricstest.OpenConns(before) != ""; before = scrape() {
		if time.Now().After(deadline) {
			t.Fatalf("connections still open before the exchange: %s", metricstest.OpenConns(before))
		}
		time.Sleep(50 * time.Millisecond)
	}
	run()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = map[string]float64{}
		for k, v := range scrape() {
			if d := v - before[k]; d != 0 {
				got[k] = d
			}
		}
		wanted = want(got)
		if metricstest.Diff(wanted, got) == "" || time.Now().After(deadline) {
			return got, wanted
		}
	}
}

// TestTCPMetricsEgress: one known TCP exchange through a CONNECT tunnel
// from order-1's sidecar, through an egress gateway replica, to an
// external TCP server moves exactly these TCP counters: one connection
// opened and closed on each of the two sidecars, the bytes the client
// wrote as received and the bytes it read as sent, labelled with the
// verified source and the destination; and the same exchange through the
// ALLOW_ANY passthrough (CONNECT dialled by the sidecar itself).
func TestTCPMetricsEgress(t *testing.T) {
	for _, policy := range []string{"REGISTRY_ONLY", "ALLOW_ANY"} {
		t.Run(policy, func(t *testing.T) {
			e := startEgressMesh(t, launch.WithControlPlaneArgs("--outbound-policy="+policy))
			proxy := e.proxies["order-1"].Host
			target := fmt.Sprintf("%s:%d", hostTCP, portTCP)
			if policy == "ALLOW_ANY" {
				target = fmt.Sprintf("%s.110:%d", e.base, portTCP) // not registered: the passthrough
			}
			health := map[string]string{}
			for _, n := range []string{"order-1", "egress-1", "egress-2"} {
				w, _ := e.m.Workload(n)
				health[n] = w.HealthAddress()
			}
			// Ready: the route to the target is there.
			var err error
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if _, _, err = tcpExchange(t.Context(), proxy, target, "ready"); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("TCP through %s never worked: %v", target, err)
			}

			const (
				order   = "spiffe://cluster.local/ns/shop/sa/order"
				gateway = "spiffe://cluster.local/ns/weft-system/sa/weft-egress-gateway"
				gwSvc   = "weft-egress-gateway.weft-system.svc.cluster.local"
			)
			var sent, received int
			var replica string // the gateway replica that carried it
			want := func(got map[string]float64) map[string]float64 {
				w := map[string]float64{}
				if policy == "ALLOW_ANY" {
					metricstest.AddTCP(w, "order-1", sent, received, "outbound", "order-1", "shop", order, "", "", "", "")
					return w
				}
				// Either replica may carry it: the one order-1 names.
				replica = "egress-1"
				if got["order-1 "+metricstest.TCPSeries(mesh.MetricTCPOpened, "outbound", "order-1", "shop", order, "egress-2", mesh.EgressGatewayNamespace, gwSvc, gateway)] > 0 {
					replica = "egress-2"
				}
				metricstest.AddTCP(w, "order-1", sent, received, "outbound", "order-1", "shop", order, replica, mesh.EgressGatewayNamespace, gwSvc, gateway)
				metricstest.AddTCP(w, replica, sent, received, "inbound", "order-1", "shop", order, replica, mesh.EgressGatewayNamespace, "shop/tcpecho", gateway)
				return w
			}
			got, wanted := tcpDelta(t, health, want, func() {
				var err error
				if sent, received, err = tcpExchange(t.Context(), proxy, target, "ping"); err != nil {
					t.Fatal(err)
				}
			})
			if want := len("hello tcp\n") + len("echo:ping\n"); sent != len("ping\n") || received != want {
				t.Errorf("client wrote %d and read %d bytes, want %d and %d", sent, received, len("ping\n"), want)
			}
			if d := metricstest.Diff(wanted, got); d != "" {
				t.Errorf("TCP counters differ from the exchange (replica %q):\n%s", replica, d)
			}
		})
	}
}
