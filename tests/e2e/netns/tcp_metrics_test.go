package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/tests/metricstest"

	"github.com/weftmesh/weft/api/mesh"
)

// tcpCounters reads the weft_tcp_* series of the sidecar at ip (from the
// hub, through its health port): "name{labels}" -> value.
func tcpCounters(ctx context.Context, c *http.Client, ip string) (map[string]float64, error) {
	return metricstest.Scrape(ctx, c, "http://"+net.JoinHostPort(ip, strconv.Itoa(mesh.PortHealth))+"/metrics", "weft_tcp_")
}

// checkTCPMetrics: one known raw TCP exchange from client-1 to the echo
// Service (captured, carried over the mTLS tunnel, dialled by echo-1's
// inbound) moves exactly one connection and its bytes on both sidecars,
// with both ends' labels.
func (e *meshEnv) checkTCPMetrics(ctx context.Context, echo string) error {
	hub := e.client(e.net.Hub)
	pods := []string{"client-1", "echo-1"}
	scrape := func() (map[string]float64, error) {
		all := map[string]float64{}
		for _, p := range pods {
			s, err := tcpCounters(ctx, hub, e.pods[p].IP.String())
			if err != nil {
				return nil, err
			}
			for k, v := range s {
				all[p+" "+k] = v
			}
		}
		return all, nil
	}
	// Quiet first: every earlier connection counted closed.
	var before map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if before, err = scrape(); err != nil {
			return err
		}
		if open := metricstest.OpenConns(before); open == "" {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("connections still open before the exchange: %s", open)
		}
	}
	got, err := tcpEcho(ctx, e.pods["client-1"].ns, echo, "count")
	if err != nil || got != "hello from echo-1|echo:count" {
		return fmt.Errorf("client -> echo: %q %w", got, err)
	}
	const (
		client = "spiffe://" + trustDomain + "/ns/" + ns + "/sa/client"
		server = "spiffe://" + trustDomain + "/ns/" + ns + "/sa/echo"
		svc    = "echo." + ns + ".svc." + trustDomain
	)
	up, down := len("count\n"), len("hello from echo-1\n")+len("echo:count\n")
	want := map[string]float64{}
	metricstest.AddTCP(want, "client-1", up, down, "outbound", "client-1", ns, client, "echo-1", ns, svc, server)
	metricstest.AddTCP(want, "echo-1", up, down, "inbound", "client-1", ns, client, "echo-1", ns, svc, server)
	var diff string
	// The connection is counted closed a moment after the client closes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after, err := scrape()
		if err != nil {
			return err
		}
		delta := map[string]float64{}
		for k, v := range after {
			if d := v - before[k]; d != 0 {
				delta[k] = d
			}
		}
		if diff = metricstest.Diff(want, delta); diff == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TCP counters differ from the exchange:\n%s", diff)
		}
	}
}
