package datapath

import (
	"crypto/tls"
	"crypto/x509"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/bench/quantile"
)

func TestParseFortio(t *testing.T) {
	const js = `{"ActualQPS": 999.2, "NumThreads": 16, "RetCodes": {"200": 19990, "503": 10},
	  "DurationHistogram": {"Count": 20000, "Avg": 0.000124,
	    "Data": [{"Start": 0.0000805, "End": 0.00009, "Count": 19000}, {"Start": 0.0005, "End": 0.0006, "Count": 1000}],
	    "Percentiles": [{"Percentile": 50, "Value": 0.000130}, {"Percentile": 90, "Value": 0.000221},
	                    {"Percentile": 99, "Value": 0.000350}, {"Percentile": 99.9, "Value": 0.00225}]}}`
	r, err := parseFortio([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors() != 10 || r.Requests() != 20016 || math.Abs(r.Pct["99.9"]-2250) > 1e-6 || math.Abs(r.Pct["50"]-130) > 1e-6 {
		t.Fatalf("parsed %+v", r)
	}
	if len(r.Hist) != 2 || math.Abs(r.Hist[1].Start-500) > 1e-6 || math.Abs(r.Hist[1].End-600) > 1e-6 || r.Hist[1].Count != 1000 {
		t.Fatalf("histogram %+v", r.Hist)
	}
	for name, js := range map[string]string{
		"missing percentiles":          `{"DurationHistogram": {"Count": 5, "Percentiles": []}}`,
		"histogram short of the count": strings.Replace(js, `"Count": 1000}`, `"Count": 999}`, 1),
	} {
		if _, err := parseFortio([]byte(js)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestParseAccessLog(t *testing.T) {
	// As fortio 1.65 writes it: latency in seconds with %f, start in Unix ns.
	const log = `{"latency":0.000179,"timestamp":1764000000000000000,"thread":3,"iter":0,"ok":true,"details":"200"}
{"latency":0.012345,"timestamp":1764000000001000000,"thread":4,"iter":0,"ok":false,"details":"503"}
`
	got, err := parseAccessLog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []timedLatency{{Start: 1764000000000000000, Micro: 179}, {Start: 1764000000001000000, Micro: 12345}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseAccessLog = %+v, want %+v", got, want)
	}
	for name, bad := range map[string]string{"not json": "latency 0.1\n", "no latency": `{"timestamp":1}`} {
		if _, err := parseAccessLog([]byte(bad)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestParseWrk(t *testing.T) {
	const out = `Running 10s test @ http://127.0.90.21:8080/1k
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.38ms  386.93us  12.12ms   83.20%
    Req/Sec    23.01k   612.88    24.05k    74.00%
  Latency Distribution
     50%    1.32ms
     75%    1.55ms
     90%    1.89ms
     99%    2.67ms
  228405 requests in 10.00s, 263.21MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  22830.03
Transfer/sec:     26.31MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 22830.03 || r.Count != 228405 || r.Non2xx != 7 || r.Lat["99"] != "2.67ms" || !strings.Contains(r.SockErr, "read 3") {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrk("unable to connect to 127.0.90.21:8080 Connection refused"); err == nil {
		t.Fatal("no summary: want an error")
	}
}

func TestMedianMinMax(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing should be NaN")
	}
	if lo, hi := minMax([]float64{3, -1, 9}); lo != -1 || hi != 9 {
		t.Errorf("minMax = %v..%v", lo, hi)
	}
}

func TestSpliceInto(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := spliceInto(file, "first\n"); err != nil {
		t.Fatal(err)
	}
	// Hand-written text around the section survives a second run.
	b, _ := os.ReadFile(file)
	edited := "intro by a human\n\n" + string(b) + "\nnotes after\n"
	if err := os.WriteFile(file, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := spliceInto(file, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(file)
	s := string(b)
	for _, want := range []string{"intro by a human", "second", "notes after", beginMarker, endMarker} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if strings.Contains(s, "first") || strings.Count(s, beginMarker) != 1 {
		t.Errorf("old section not replaced:\n%s", s)
	}
}

// synthetic builds a report over two rounds in which B adds 100 µs and W
// adds wAdd at every percentile, B saturates at 20k and W at 15k. Each
// latency run has 1000 requests, 8 s long (8 blocks of 125): in round r
// path id's k-th smallest latency is add[id] + k + 1000·(r−1) µs, so the
// pooled latencies are add + 1..2000 (p50 add + 1000, p90 1800, p99 1980,
// p99.9 1998), spread over the blocks by a permutation of start times.
// fortio's own per-run percentiles are 100·r + add.
func synthetic(wAdd float64) *report {
	cfg := DefaultConfig()
	cfg.Rounds, cfg.Sizes, cfg.QPS, cfg.Command = 2, []string{"1k"}, []int{1000}, "make bench"
	r := &report{cfg: cfg, idleRSS: map[string]int64{"client proxy": 10 * 1024, "server proxy": 11 * 1024, "client proxy" + anonSuffix: 3 * 1024}}
	add := map[string]float64{"A": 0, "B": 100, "W": wAdd}
	sat := map[string]float64{"A": 90000, "B": 20000, "W": 15000}
	for _, id := range []string{"A", "B", "W"} {
		p := &benchPath{id: id, desc: pathDescriptions[id], hop: "test"}
		if id != "A" {
			p.watched = []watched{{role: "client proxy", proxy: true}, {role: "server proxy", proxy: true}}
		}
		r.paths = append(r.paths, p)
		for round := 1; round <= 2; round++ {
			base := float64(100 * round)
			lat := latencyResult{QPS: 1000, Count: 1000, OK: 1000, Conns: 16, Pct: map[string]float64{}}
			for _, pct := range percentiles {
				lat.Pct[pct] = base + add[id]
			}
			lat.Hist = quantile.Histogram{{Start: add[id] + float64(1000*(round-1)), End: add[id] + float64(1000*round), Count: 1000}}
			for k := 1; k <= 1000; k++ {
				slot := int64(k*7919%1000) * int64(8*time.Millisecond)
				lat.Timed = append(lat.Timed, timedLatency{Start: 1e18 + slot, Micro: add[id] + float64(k+1000*(round-1))})
			}
			cpu := map[string]float64{"client proxy": 1.0, "server proxy": 0.5}
			rss := map[string]int64{"client proxy": 12 * 1024, "server proxy": 30 * 1024}
			r.samples = append(r.samples,
				sample{round: round, size: "1k", path: id, qps: 1000, lat: lat, cpu: cpu, rss: rss},
				sample{round: round, size: "1k", path: id, sat: saturationResult{RPS: sat[id], Count: 100000}, cpu: cpu, rss: rss})
		}
	}
	return r
}

func TestReportMarkdown(t *testing.T) {
	md := synthetic(50).markdown()
	for _, want := range []string{
		// Pooled: A 1..2000, B 101..2100, W 51..2050.
		"| p50 latency, µs | 1000 | 1100 | 1050 | 0.95 | 1.05 |  |  |",
		"| p99 latency, µs | 1980 | 2080 | 2030 | 0.98 | 1.03 |  |  |",
		"| added p99 latency, µs | – | 100 | 50 | 0.50 | – | < 500 µs and ≤ nginx | yes |",
		// fortio's per-run p99: round 1 A 100, B 200, W 150; round 2 A 200, B 300, W 250.
		"| added p99 per round (fortio's p99 of each run), median over rounds, µs | – | 100 | 50 | 0.50 | – |  |  |",
		"| A | 1000.0 | 2000 | 1000 | 1800 | 1980 | 1998 | – | – | – | – | – | – |",
		"| requests/s at saturation | 90000 | 20000 | 15000 | 0.75 | 0.17 | ≥ 0.60 × nginx | yes |",
		// 30 MiB peak RSS on the server side misses the 20 MB target.
		"| peak RSS at 1000 requests/s, server proxy, MiB | – | 30.0 | 30.0 | 1.00 | – | ≤ 20 MB | **no** |",
		"| idle RSS (ready, before load), client proxy, MiB | | | 10.0 | | | ≤ 15 MB | yes |",
		"shared by every sidecar on a node), client proxy, MiB | | | 3.0 | | | | |",
		"Not yet like for like",
		"| B | 1k | 20000 | 20000..20000 | 0.22 | – | 0 |",
		// Per workload: added p50, added p99, saturation, CPU client, CPU server (W / B).
		"| HTTP/1.1, 1k bodies | 50 / 100 (0.50) | 50 / 100 (0.50), yes | 15000 / 20000 (0.75) | 10.0 / 10.0 (1.00) | 5.0 / 5.0 (1.00) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestReportVerdict(t *testing.T) {
	// Pooled p99 of add + 1..2000 in 2·9 blocks: D = 16/9 (the rounds'
	// blocks differ); 95 % ranks 1980 ∓ 1.96·√(D·19.8) = 1968..1992, so
	// SE = 24/(2·1.96) = 6.1226 for every path, and an added or W − B
	// interval at 97.5 % is d ∓ 2.2414·√2·6.1226 = d ∓ 19.41.
	noLogs := func(r *report) {
		for i := range r.samples {
			r.samples[i].lat.Timed = nil
		}
	}
	for _, tc := range []struct {
		name  string
		wAdd  float64
		strip func(*report)
		want  []string
	}{
		{"W well below B", 50, nil, []string{
			"| added p99 latency, µs | – | 100 | 50 | 0.50 | – | < 500 µs and ≤ nginx | yes |",
			"| added p99, 97.5 % interval, µs | | 81..119 | 31..69 | | | | |",
			"(interval; it resolves a difference of 19 % of B's added p99) | | | -50 (-69..-31) | | | ≤ 0 | yes |",
		}},
		{"W above B", 150, nil, []string{
			"| added p99 latency, µs | – | 100 | 150 | 1.50 | – | < 500 µs and ≤ nginx | **no** |",
			"| +50 (31..69) | | | ≤ 0 | **no** |",
		}},
		{"W within B's interval", 101, nil, []string{
			"| added p99 latency, µs | – | 100 | 101 | 1.01 | – | < 500 µs and ≤ nginx | not resolved |",
			"| +1 (-18..20) | | | ≤ 0 | not resolved |",
		}},
		{"W over 500 µs", 600, nil, []string{"| added p99 latency, µs | – | 100 | 600 | 6.00 | – | < 500 µs and ≤ nginx | **no** |"}},
		// Without access logs the merged histograms give the same pooled
		// percentiles (one even bucket per run) and no interval.
		{"histograms only", 50, noLogs, []string{
			"| added p99 latency, µs | – | 100 | 50 | 0.50 | – | < 500 µs and ≤ nginx | not resolved |",
			"| added p99, 97.5 % interval, µs | | −∞..∞ | −∞..∞ | | | | |",
			"it resolves a difference of – % of B's added p99) | | | -50 (−∞..∞) | | | ≤ 0 | not resolved |",
			"| A | 1000.0 | 2000 | 1000 | 1800 | 1980 | 1998 | – | – | – | – | – | – | – | 0 |",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := synthetic(tc.wAdd)
			if tc.strip != nil {
				tc.strip(r)
			}
			md := r.markdown()
			for _, want := range tc.want {
				if !strings.Contains(md, want) {
					t.Errorf("markdown lacks %q:\n%s", want, md)
				}
			}
		})
	}
}

func TestPKIAndNginxConfig(t *testing.T) {
	dir := t.TempDir()
	pk, err := mintPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	// The certificates make a working mutual TLS 1.3 handshake.
	srvCert, err := tls.LoadX509KeyPair(pk.ServerCert, pk.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := tls.LoadX509KeyPair(pk.ClientCert, pk.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(pk.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots, MinVersion: tls.VersionTLS13})
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(t.Context()) }()
	cli := tls.Client(b, &tls.Config{Certificates: []tls.Certificate{cliCert}, RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13})
	if err := cli.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}

	for _, role := range []string{"client", "server"} {
		conf, err := writeNginxConf(nginxConf{
			Role: role, Dir: filepath.Join(dir, role), Listen: "127.0.90.99:8080", ListenH2: "127.0.90.99:8081", ListenGRPC: "127.0.90.99:8082",
			Next: "127.0.90.98:8443", NextGRPC: "127.0.90.98:8444", ServerName: serverName, PKI: pk,
		})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(conf)
		wants := []string{"worker_processes 1;", "keepalive_requests 1000000;", "TLSv1.3", "proxy_max_temp_file_size 0;", "grpc_pass grpc"}
		if role == "client" {
			wants = append(wants, "listen 127.0.90.99:8081 http2;", "grpc_ssl_verify on;", "server 127.0.90.98:8444;")
		} else {
			wants = append(wants, "listen 127.0.90.99:8082 ssl http2;", "ssl_verify_client on;")
		}
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s config lacks %q", role, want)
			}
		}
		if _, err := exec.LookPath("nginx"); err != nil {
			continue // syntax check only where nginx is installed
		}
		out, err := exec.CommandContext(t.Context(), "nginx", "-t", "-q", "-e", "stderr", "-p", filepath.Dir(conf), "-c", conf).CombinedOutput()
		if err != nil {
			t.Errorf("nginx -t %s: %v\n%s", role, err, out)
		}
	}
}

func TestReportLikeForLikeNote(t *testing.T) {
	r := synthetic(50)
	for _, p := range r.paths {
		p.hopTLS = p.id != "A"
	}
	if md := r.markdown(); strings.Contains(md, "Not yet like for like") {
		t.Errorf("both hops are TLS, yet the report says they differ:\n%s", md)
	}
}

func TestLatDur(t *testing.T) {
	def := DefaultConfig()
	plain := DefaultConfig()
	plain.HeadLatDur = 0
	for _, tc := range []struct {
		name string
		cfg  Config
		size string
		qps  int
		want time.Duration
	}{
		{"summary's row", def, "1k", 1000, 60 * time.Second},
		{"same size, other rate", def, "1k", 5000, 8 * time.Second},
		{"other size, same rate", def, "64k", 1000, 8 * time.Second},
		{"no head duration", plain, "1k", 1000, 8 * time.Second},
	} {
		if got := tc.cfg.latDur(tc.size, tc.qps); got != tc.want {
			t.Errorf("%s: latDur = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBusyLoad(t *testing.T) {
	for in, want := range map[string]bool{"0.20 / 0.30 / 0.10": false, "1.50 / 2 / 2": false, "8.87 / 10.34 / 7.44": true, "": false} {
		if got := busyLoad(in); got != want {
			t.Errorf("busyLoad(%q) = %v, want %v", in, got, want)
		}
	}
}
