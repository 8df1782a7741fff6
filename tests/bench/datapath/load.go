package datapath

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/tests/bench/quantile"
)

// latencyResult is one constant-rate fortio run.
type latencyResult struct {
	QPS      float64            // achieved requests/s
	Count    int64              // requests measured
	Conns    int                // connections (fortio makes one extra call per connection)
	OK       int64              // 200 responses
	Pct      map[string]float64 // percentile ("50", "99.9") -> latency in µs
	AvgMicro float64
	Hist     quantile.Histogram // fortio's histogram, µs
	Timed    []timedLatency     // every request, from fortio's access log (nil: no log)
}

// timedLatency is one request: when it started (Unix ns) and its latency (µs).
type timedLatency struct {
	Start int64
	Micro float64
}

// Requests is every request the server side saw during the run.
func (r latencyResult) Requests() int64 { return r.Count + int64(r.Conns) }

// Errors is every measured request that was not a 200.
func (r latencyResult) Errors() int64 { return r.Count - r.OK }

// fortioJSON is the part of fortio's -json output the harness reads.
type fortioJSON struct {
	ActualQPS         float64          `json:"ActualQPS"`
	NumThreads        int              `json:"NumThreads"`
	RetCodes          map[string]int64 `json:"RetCodes"`
	DurationHistogram struct {
		Count int64   `json:"Count"`
		Avg   float64 `json:"Avg"`
		Data  []struct {
			Start float64 `json:"Start"` // seconds
			End   float64 `json:"End"`
			Count int64   `json:"Count"`
		} `json:"Data"`
		Percentiles []struct {
			Percentile float64 `json:"Percentile"`
			Value      float64 `json:"Value"` // seconds
		} `json:"Percentiles"`
	} `json:"DurationHistogram"`
}

// percentiles the harness asks fortio for, as fortio prints them.
var percentiles = []string{"50", "90", "99", "99.9"}

func parseFortio(b []byte) (latencyResult, error) {
	var j fortioJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return latencyResult{}, fmt.Errorf("fortio json: %w", err)
	}
	r := latencyResult{
		QPS:      j.ActualQPS,
		Count:    j.DurationHistogram.Count,
		Conns:    j.NumThreads,
		OK:       j.RetCodes["200"] + j.RetCodes["SERVING"], // HTTP; gRPC health
		AvgMicro: j.DurationHistogram.Avg * 1e6,
		Pct:      map[string]float64{},
	}
	for _, p := range j.DurationHistogram.Percentiles {
		r.Pct[strconv.FormatFloat(p.Percentile, 'g', -1, 64)] = p.Value * 1e6
	}
	for _, b := range j.DurationHistogram.Data {
		r.Hist = append(r.Hist, quantile.Bucket{Start: b.Start * 1e6, End: b.End * 1e6, Count: b.Count})
	}
	for _, p := range percentiles {
		if _, ok := r.Pct[p]; !ok {
			return r, fmt.Errorf("fortio json: no p%s", p)
		}
	}
	if r.Count == 0 {
		return r, errors.New("fortio json: no requests")
	}
	if n := r.Hist.Count(); n != r.Count {
		return r, fmt.Errorf("fortio json: histogram holds %d requests, want %d", n, r.Count)
	}
	return r, nil
}

// parseAccessLog reads fortio's JSON access log: one line per request,
// {"latency":0.000179,"timestamp":<start, Unix ns>,...}, latency in seconds
// with 1 µs resolution (%f).
func parseAccessLog(b []byte) ([]timedLatency, error) {
	var out []timedLatency
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e struct {
			Latency   *float64 `json:"latency"`
			Timestamp int64    `json:"timestamp"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("fortio access log line %d: %w", i+1, err)
		}
		if e.Latency == nil {
			return nil, fmt.Errorf("fortio access log line %d: no latency", i+1)
		}
		out = append(out, timedLatency{Start: e.Timestamp, Micro: math.Round(*e.Latency * 1e6)})
	}
	return out, nil
}

// saturationResult is one wrk run.
type saturationResult struct {
	RPS     float64
	Count   int64
	Non2xx  int64
	SockErr string            // wrk's "Socket errors" line, empty when none
	Lat     map[string]string // "50" -> "1.32ms" (wrk's own rounding)
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkCount   = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors:\s*(.*)`)
	wrkLat     = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+(\S+)`)
)

func parseWrk(out string) (saturationResult, error) {
	m := wrkRPS.FindStringSubmatch(out)
	n := wrkCount.FindStringSubmatch(out)
	if m == nil || n == nil {
		return saturationResult{}, fmt.Errorf("wrk: no summary in output: %q", truncate(out, 300))
	}
	r := saturationResult{Lat: map[string]string{}}
	var err1, err2 error
	r.RPS, err1 = strconv.ParseFloat(m[1], 64)
	r.Count, err2 = strconv.ParseInt(n[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return r, fmt.Errorf("wrk: %w", err)
	}
	if x := wrkNon2xx.FindStringSubmatch(out); x != nil {
		r.Non2xx, _ = strconv.ParseInt(x[1], 10, 64)
	}
	if x := wrkSockErr.FindStringSubmatch(out); x != nil {
		r.SockErr = strings.TrimSpace(x[1])
	}
	for _, x := range wrkLat.FindAllStringSubmatch(out, -1) {
		r.Lat[x[1]] = x[2]
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// target is what a load generator sends to: a URL and, for the Weft path,
// the Host header that names the service (the URL is the client sidecar).
// Proto is the protocol of the load generator's leg (protoHTTP1, protoH2,
// protoGRPC: the URL's host:port is then the gRPC target and Host its
// :authority).
type target struct {
	URL   string
	Host  string
	Proto string
}

// hostPort is the URL's host:port (the gRPC dial target).
func (t target) hostPort() string {
	hp := strings.TrimPrefix(t.URL, "http://")
	if i := strings.IndexByte(hp, '/'); i >= 0 {
		hp = hp[:i]
	}
	return hp
}

// loadGen runs the two load generators, pinned to cpu (-1: not pinned).
type loadGen struct {
	fortio, wrk string
	cpu         int
}

func (g loadGen) pin(argv []string) []string {
	if g.cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(g.cpu)}, argv...)
}

// fortioArgs is a constant-rate run: uniform spacing, histogram resolution
// 10 µs (-r; fortio's buckets widen with the value: 50 µs from 200 µs,
// 100 µs from 500 µs), HTTP/1.1 keep-alive with fortio's fast client; with
// accessLog every request's latency (1 µs) goes there too.
func (g loadGen) fortioArgs(t target, qps, conns int, dur time.Duration, jsonFile, accessLog string) []string {
	argv := []string{
		g.fortio, "load", "-quiet", "-qps", strconv.Itoa(qps), "-c", strconv.Itoa(conns),
		"-t", dur.String(), "-r", "0.00001", "-p", strings.Join(percentiles, ","),
		"-json", jsonFile,
	}
	if accessLog != "" {
		argv = append(argv, "-access-log-file", accessLog, "-access-log-format", "json")
	}
	if qps > 0 {
		argv = append(argv, "-uniform")
	}
	if t.Host != "" {
		// For gRPC fortio turns a Host header into the :authority.
		argv = append(argv, "-H", "Host: "+t.Host)
	}
	switch t.Proto {
	case protoH2:
		argv = append(argv, "-h2")
	case protoGRPC:
		return g.pin(append(argv, "-grpc", t.hostPort()))
	}
	return g.pin(append(argv, t.URL))
}

func (g loadGen) wrkArgs(t target, conns int, dur time.Duration) []string {
	argv := []string{g.wrk, "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(dur.Seconds())) + "s", "--latency"}
	if t.Host != "" {
		argv = append(argv, "-H", "Host: "+t.Host)
	}
	return g.pin(append(argv, t.URL))
}

// runFortio runs one constant-rate load and parses its JSON report and,
// when accessLog is not empty, its access log (fortio appends: it is
// removed first).
func (g loadGen) runFortio(ctx context.Context, t target, qps, conns int, dur time.Duration, jsonFile, accessLog, logFile string) (latencyResult, error) {
	if accessLog != "" {
		if err := os.Remove(accessLog); err != nil && !errors.Is(err, os.ErrNotExist) {
			return latencyResult{}, fmt.Errorf("fortio: %w", err)
		}
	}
	if err := runBounded(ctx, dur+30*time.Second, logFile, g.fortioArgs(t, qps, conns, dur, jsonFile, accessLog)); err != nil {
		return latencyResult{}, err
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		return latencyResult{}, fmt.Errorf("fortio: %w", err)
	}
	r, err := parseFortio(b)
	if err != nil || accessLog == "" {
		return r, err
	}
	if b, err = os.ReadFile(accessLog); err != nil {
		return r, fmt.Errorf("fortio: %w", err)
	}
	if r.Timed, err = parseAccessLog(b); err != nil {
		return r, err
	}
	if int64(len(r.Timed)) != r.Count {
		return r, fmt.Errorf("fortio: access log holds %d requests, the histogram %d", len(r.Timed), r.Count)
	}
	return r, nil
}

// runWrk runs one saturation load and parses wrk's report.
func (g loadGen) runWrk(ctx context.Context, t target, conns int, dur time.Duration, logFile string) (saturationResult, error) {
	if err := runBounded(ctx, dur+30*time.Second, logFile, g.wrkArgs(t, conns, dur)); err != nil {
		return saturationResult{}, err
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		return saturationResult{}, fmt.Errorf("wrk: %w", err)
	}
	return parseWrk(string(b))
}

// runSaturation runs one saturation load: wrk for HTTP/1.1, fortio at
// full speed (-qps 0) for HTTP/2 and gRPC, which wrk does not speak.
func (g loadGen) runSaturation(ctx context.Context, t target, conns int, dur time.Duration, jsonFile, logFile string) (saturationResult, error) {
	if t.Proto == protoHTTP1 {
		return g.runWrk(ctx, t, conns, dur, logFile)
	}
	l, err := g.runFortio(ctx, t, 0, conns, dur, jsonFile, "", logFile)
	if err != nil {
		return saturationResult{}, err
	}
	return saturationResult{RPS: l.QPS, Count: l.Requests(), Non2xx: l.Errors(), Lat: map[string]string{}}, nil
}

// runBounded runs argv to completion with its output in logFile, killed
// after limit.
func runBounded(ctx context.Context, limit time.Duration, logFile string, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	f, err := os.Create(logFile)
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logFile)
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, truncate(string(out), 500))
	}
	return nil
}
