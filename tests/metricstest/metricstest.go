package metricstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
)

// Scrape GETs url with c and returns "name{labels}" -> value for every
// sample line that starts with one of the prefixes.
func Scrape(ctx context.Context, c *http.Client, url string, prefixes ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range prefixes {
			if !strings.HasPrefix(line, p) {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", line, err)
			}
			out[line[:i]] = v
			break
		}
	}
	return out, sc.Err()
}

// Diff lists how got differs from want, one line each, sorted; "" when
// they agree (a series missing from got counts as 0).
func Diff(want, got map[string]float64) string {
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

// TCPSeries is the series name of a weft_tcp_* metric with the request
// labels, given in this order: direction, source workload, source
// namespace, source identity, destination workload, destination namespace,
// destination service, destination identity (Prometheus' text format
// prints them sorted by name).
func TCPSeries(metric string, labels ...string) string {
	if len(labels) != 8 {
		panic(fmt.Sprintf("metricstest.TCPSeries: %d labels, want 8", len(labels)))
	}
	l := labels
	return fmt.Sprintf(`%s{destination_identity=%q,destination_namespace=%q,destination_service=%q,destination_workload=%q,direction=%q,source_identity=%q,source_namespace=%q,source_workload=%q}`,
		metric, l[7], l[5], l[6], l[4], l[0], l[3], l[2], l[1])
}

// AddTCP adds to want what one TCP connection moves on one sidecar: opened
// and closed once, received bytes from the side that opened it and sent
// bytes back. Keys are prefix+" "+TCPSeries(...), labels as for TCPSeries.
func AddTCP(want map[string]float64, prefix string, received, sent int, labels ...string) {
	key := func(metric string) string { return prefix + " " + TCPSeries(metric, labels...) }
	want[key(mesh.MetricTCPOpened)]++
	want[key(mesh.MetricTCPClosed)]++
	if received > 0 {
		want[key(mesh.MetricTCPReceivedBytes)] += float64(received)
	}
	if sent > 0 {
		want[key(mesh.MetricTCPSentBytes)] += float64(sent)
	}
}

// OpenConns names the series whose opened and closed counters differ
// (connections still open), comma separated; "" when none.
func OpenConns(s map[string]float64) string {
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
