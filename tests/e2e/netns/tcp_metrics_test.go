package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// tcpCounters reads the weft_tcp_* series of the sidecar at ip (from the
// hub, through its health port): "name{labels}" -> value.
func tcpCounters(ctx context.Context, c *http.Client, ip string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, strconv.Itoa(mesh.PortHealth))+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "weft_tcp_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// tcpWant adds one connection that moved received bytes from its opener
// and sent bytes back, on the sidecar wl, with the request labels in
// order (direction, source workload/namespace/identity, destination
// workload/namespace/service/identity).
func tcpWant(want map[string]float64, wl string, received, sent int, l ...string) {
	name := func(metric string) string {
		return fmt.Sprintf(`%s %s{destination_identity=%q,destination_namespace=%q,destination_service=%q,destination_workload=%q,direction=%q,source_identity=%q,source_namespace=%q,source_workload=%q}`,
			wl, metric, l[7], l[5], l[6], l[4], l[0], l[3], l[2], l[1])
	}
	want[name(mesh.MetricTCPOpened)]++
	want[name(mesh.MetricTCPClosed)]++
	want[name(mesh.MetricTCPReceivedBytes)] += float64(received)
	want[name(mesh.MetricTCPSentBytes)] += float64(sent)
}

// tcpDiff lists how got differs from want, one line each.
func tcpDiff(want, got map[string]float64) string {
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("want %v got %v: %s", v, got[k], k))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected +%v: %s", v, k))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
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
		if open := openConns(before); open == "" {
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
	tcpWant(want, "client-1", up, down, "outbound", "client-1", ns, client, "echo-1", ns, svc, server)
	tcpWant(want, "echo-1", up, down, "inbound", "client-1", ns, client, "echo-1", ns, svc, server)
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
		if diff = tcpDiff(want, delta); diff == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TCP counters differ from the exchange:\n%s", diff)
		}
	}
}

// openConns names the series whose opened and closed counters differ.
func openConns(s map[string]float64) string {
	var open []string
	for k, v := range s {
		if i := strings.Index(k, mesh.MetricTCPOpened+"{"); i >= 0 {
			if c := k[:i] + mesh.MetricTCPClosed + k[i+len(mesh.MetricTCPOpened):]; s[c] != v {
				open = append(open, k)
			}
		}
	}
	sort.Strings(open)
	return strings.Join(open, ", ")
}
