package datapath

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/tests/bench/quantile"
)

// anonSuffix marks a role's RssAnon in idleRSS (the role alone is VmRSS).
const anonSuffix = " anon"

// report is a finished run, ready to render.
type report struct {
	cfg      Config
	env      []string
	paths    []*benchPath
	skipped  []string
	samples  []sample
	idleRSS  map[string]int64
	started  time.Time
	elapsed  time.Duration
	load     [2]string // load averages at start and end
	goBench  string
	rendered string
	pools    map[string]*pooledLat // size/qps/path -> pooled latency
}

func buildReport(st *runState) *report {
	r := &report{
		cfg: st.cfg, env: st.env, paths: st.paths, skipped: st.skipped, samples: st.samples,
		idleRSS: st.idleRSS, started: st.started, elapsed: time.Since(st.started),
		load: [2]string{st.loadStart, st.loadEnd},
	}
	if st.cfg.GoBenchFile != "" {
		if b, err := os.ReadFile(st.cfg.GoBenchFile); err == nil {
			r.goBench = strings.TrimSpace(string(b))
		}
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func minMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi := v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// pick returns the samples of one (size, qps, path), ordered by round.
func (r *report) pick(size string, qps int, path string) []sample {
	var out []sample
	for _, s := range r.samples {
		if s.size == size && s.qps == qps && s.path == path {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].round < out[j].round })
	return out
}

// Latency statistics (package quantile): every latency percentile pools the
// requests of all rounds of a path; the verdict on added p99 rests on two
// intervals (W's added p99; W − B), each at verdictLevel so that both hold
// together with probability confidence; the design effect is measured over
// blocks of blockLen.
const (
	confidence = 0.95
	blockLen   = time.Second
)

var verdictLevel = quantile.Level(confidence, 2)

// pooledLat is one path's latency at one workload and rate, pooled over rounds.
type pooledLat struct {
	n     int64
	exact bool // from every request's latency; false: merged fortio histograms, no intervals
	pct   map[string]float64
	est   map[string]quantile.Estimate // standard error infinite without access logs
	deff  map[string]float64
}

var unbounded = quantile.Interval{Lo: math.Inf(-1), Hi: math.Inf(1)}

// pooled pools the latency runs of (size, qps, path) over rounds: from
// fortio's access logs (every request, 1 µs) when every run has one, else
// from the merged histograms.
func (r *report) pooled(size string, qps int, path string) *pooledLat {
	key := fmt.Sprintf("%s/%d/%s", size, qps, path)
	if p, ok := r.pools[key]; ok {
		return p
	}
	ss := r.pick(size, qps, path)
	p := &pooledLat{exact: len(ss) > 0, pct: map[string]float64{}, est: map[string]quantile.Estimate{}, deff: map[string]float64{}}
	var hists []quantile.Histogram
	var obs []quantile.Obs
	for _, s := range ss {
		p.n += s.lat.Count
		hists = append(hists, s.lat.Hist)
		if s.lat.Timed == nil {
			p.exact = false
			continue
		}
		t0 := s.lat.Timed[0].Start
		for _, t := range s.lat.Timed {
			t0 = min(t0, t.Start)
		}
		for _, t := range s.lat.Timed {
			obs = append(obs, quantile.Obs{Value: t.Micro, Block: s.round*1_000_000 + int((t.Start-t0)/int64(blockLen))})
		}
	}
	smp, h := quantile.NewSample(obs), quantile.Merge(hists...)
	for _, pct := range percentiles {
		f, _ := strconv.ParseFloat(pct, 64)
		f /= 100
		if p.exact {
			p.est[pct] = smp.Estimate(f)
			p.deff[pct] = smp.DesignEffect(f)
		} else {
			p.est[pct] = quantile.Estimate{Value: h.Quantile(f), SE: math.Inf(1)}
			p.deff[pct] = math.NaN()
		}
		p.pct[pct] = p.est[pct].Value
	}
	if r.pools == nil {
		r.pools = map[string]*pooledLat{}
	}
	r.pools[key] = p
	return p
}

// crossCheck is, per workload, rate and path, the pooled p99 from the access
// logs beside the one from the merged fortio histograms (which spread each
// bucket's requests evenly): they should agree to within a bucket's width.
func (r *report) crossCheck() []string {
	var out []string
	for _, size := range r.cfg.Sizes {
		for _, q := range r.cfg.QPS {
			for _, p := range r.paths {
				pl := r.pooled(size, q, p.id)
				var hists []quantile.Histogram
				for _, s := range r.pick(size, q, p.id) {
					hists = append(hists, s.lat.Hist)
				}
				h := quantile.Merge(hists...)
				out = append(out, fmt.Sprintf("pooled p99 %s %d/s %s: %.0f µs (SE %.1f µs, D %.2f) from %d requests' latencies, %.1f µs from the merged fortio histograms (%d requests)",
					size, q, p.id, pl.pct["99"], pl.est["99"].SE, pl.deff["99"], pl.n, h.Quantile(0.99), h.Count()))
			}
		}
	}
	return out
}

// addedPooled is path's pooled percentile minus direct's.
func (r *report) addedPooled(size string, qps int, path, pct string) float64 {
	return r.pooled(size, qps, path).pct[pct] - r.pooled(size, qps, "A").pct[pct]
}

// addedCI is the interval of path's added percentile at verdictLevel.
func (r *report) addedCI(size string, qps int, path, pct string) quantile.Interval {
	return quantile.Diff(r.pooled(size, qps, path).est[pct], r.pooled(size, qps, "A").est[pct], verdictLevel)
}

// wMinusB is the interval of W's added p99 minus B's at verdictLevel.
// Direct's p99 cancels out: it is W's p99 minus B's.
func (r *report) wMinusB(size string, qps int) quantile.Interval {
	return quantile.Diff(r.pooled(size, qps, "W").est["99"], r.pooled(size, qps, "B").est["99"], verdictLevel)
}

// notAboveZero decides "W − B ≤ 0" from its interval.
func notAboveZero(diff quantile.Interval) quantile.Verdict {
	return quantile.AtMost(diff, quantile.Interval{})
}

// p99Verdict decides issue 11's latency target at (size, qps): W's added
// p99 under 500 µs and (with B) no worse than B's; diff is the interval of
// W − B (unbounded without B).
func (r *report) p99Verdict(size string, qps int) (v quantile.Verdict, diff quantile.Interval) {
	v = quantile.Below(r.addedCI(size, qps, "W", "99"), 500)
	if !r.hasPath("B") {
		return v, unbounded
	}
	diff = r.wMinusB(size, qps)
	return quantile.All(v, notAboveZero(diff)), diff
}

// fIv formats an interval of µs.
func fIv(iv quantile.Interval) string {
	end := func(v float64) string {
		switch {
		case math.IsInf(v, -1):
			return "−∞"
		case math.IsInf(v, 1):
			return "∞"
		}
		return f0(v)
	}
	return end(iv.Lo) + ".." + end(iv.Hi)
}

// share is part as a percentage of whole, when both are finite and whole positive.
func share(part, whole float64) string {
	if math.IsInf(part, 0) || math.IsNaN(part) || !(whole > 0) {
		return "–"
	}
	return f0(100 * part / whole)
}

// signed formats a difference in µs with its sign.
func signed(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%+.0f", v)
}

// fVerdict is a verdict as the tables show it.
func fVerdict(v quantile.Verdict) string {
	switch v {
	case quantile.Met:
		return "yes"
	case quantile.NotMet:
		return "**no**"
	}
	return "not resolved"
}

// added is, per round, path's percentile (fortio's, of that run) minus
// direct's in the same round.
func (r *report) added(size string, qps int, path, pct string) []float64 {
	base := map[int]float64{}
	for _, s := range r.pick(size, qps, "A") {
		base[s.round] = s.lat.Pct[pct]
	}
	var out []float64
	for _, s := range r.pick(size, qps, path) {
		if b, ok := base[s.round]; ok {
			out = append(out, s.lat.Pct[pct]-b)
		}
	}
	return out
}

// cpuPer1k is CPU milliseconds per 1000 requests of role, one per round.
func (r *report) cpuPer1k(size string, qps int, path, role string) []float64 {
	var out []float64
	for _, s := range r.pick(size, qps, path) {
		if n := s.requests(); n > 0 {
			out = append(out, 1e6*s.cpu[role]/float64(n))
		}
	}
	return out
}

func (r *report) rssMiB(size string, qps int, path, role string) []float64 {
	var out []float64
	for _, s := range r.pick(size, qps, path) {
		out = append(out, float64(s.rss[role])/1024)
	}
	return out
}

func (r *report) maxRSSMiB(path, role string) float64 {
	var m int64
	for _, s := range r.samples {
		if s.path == path && s.rss[role] > m {
			m = s.rss[role]
		}
	}
	return float64(m) / 1024
}

func (r *report) satRPS(size, path string) []float64 {
	var out []float64
	for _, s := range r.pick(size, 0, path) {
		out = append(out, s.sat.RPS)
	}
	return out
}

func (r *report) hasPath(id string) bool {
	for _, p := range r.paths {
		if p.id == id {
			return true
		}
	}
	return false
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func f1(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

// ratio is a/b, shown only when both are positive (an added latency can
// come out negative in a noisy round; its ratio means nothing).
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func check(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// Markers around the generated section of BENCHMARKS.md.
const (
	beginMarker = "<!-- BEGIN generated by `make bench` (tests/bench/datapath): edits inside are overwritten -->"
	endMarker   = "<!-- END generated by `make bench` -->"
)

func (r *report) markdown() string {
	if r.rendered != "" {
		return r.rendered
	}
	var b bytes.Buffer
	P := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	sizes, qpss := r.cfg.Sizes, r.cfg.QPS
	head := sizes[0]
	q0 := qpss[0]

	P("## Data path: direct, nginx pair, Weft sidecar pair")
	P("")
	P("- **Command:** `%s`", r.cfg.Command)
	P("- **Date:** %s (run took %s)", r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second))
	for _, l := range r.env {
		P("- %s", l)
	}
	P("- **Pinning:** %s", r.pinning())
	if r.load[0] != "" {
		P("- **Machine load** (load average 1/5/15 min): %s at the start, %s at the end. "+
			"Anything well above 1 means other work shared the two CPUs: absolute figures are inflated and noisy, ratios less so.", r.load[0], r.load[1])
	}
	r.method(P)
	P("")
	if busyLoad(r.load[0]) || busyLoad(r.load[1]) {
		P("> **Warning: this run shared the machine with other work** (load average above 1.5): treat it as a smoke test of the harness, not as a measurement; rerun `make bench` on an idle machine.")
		P("")
	}
	P("| path | what | hop between the proxies |")
	P("|---|---|---|")
	for _, p := range r.paths {
		P("| %s | %s | %s |", p.id, p.desc, p.hop)
	}
	for _, s := range r.skipped {
		P("")
		P("**%s**", s)
	}
	P("")

	// Headline: the Weft pair against direct and the nginx pair.
	if r.hasPath("W") {
		r.headline(P, head, q0)
	}

	if r.hasPath("W") && r.hasPath("B") {
		r.perWorkload(P)
	}

	// Latency per size and rate.
	for _, size := range sizes {
		for _, q := range qpss {
			r.latencyTable(P, size, q)
		}
	}

	// Saturation.
	P("### Saturation (HTTP/1.1: wrk -t1 -c%d; HTTP/2 and gRPC: fortio -qps 0 -c%d; %s per run)", r.cfg.SatConns, r.cfg.SatConns, r.cfg.SatDur)
	P("")
	P("| path | workload | requests/s (median) | min..max | vs direct | vs nginx | non-2xx / socket errors | CPU 1 busy |")
	P("|---|---|---:|---|---:|---:|---|---:|")
	for _, size := range sizes {
		a := median(r.satRPS(size, "A"))
		bq := median(r.satRPS(size, "B"))
		for _, p := range r.paths {
			rps := r.satRPS(size, p.id)
			lo, hi := minMax(rps)
			var bad int64
			var sockErr []string
			var busy []float64
			for _, s := range r.pick(size, 0, p.id) {
				bad += s.sat.Non2xx
				if s.sat.SockErr != "" {
					sockErr = append(sockErr, s.sat.SockErr)
				}
				busy = append(busy, s.busy["cpu1"])
			}
			errs := fmt.Sprintf("%d", bad)
			if len(sockErr) > 0 {
				errs += " / " + strings.Join(sockErr, "; ")
			}
			vsB := "–"
			if p.id != "B" && r.hasPath("B") {
				vsB = ratio(median(rps), bq)
			}
			P("| %s | %s | %s | %s..%s | %s | %s | %s | %s%% |", p.id, size, f0(median(rps)), f0(lo), f0(hi), ratio(median(rps), a), vsB, errs, f0(median(busy)))
		}
	}
	P("")

	// Cost per process.
	P("### Cost per process")
	P("")
	P("CPU ms per 1000 requests (median over rounds); peak RSS in MiB (VmHWM during the run, median over rounds; max over every run of the benchmark).")
	P("")
	P("| path | process | workload | CPU @ %d req/s | CPU @ saturation | peak RSS @ %d req/s | max peak RSS | idle RSS |", q0, q0)
	P("|---|---|---|---:|---:|---:|---:|---:|")
	for _, p := range r.paths {
		for _, w := range p.watched {
			if p.id != "A" && w.role == "upstream" {
				continue
			}
			for _, size := range sizes {
				idle := "–"
				if kb, ok := r.idleRSS[w.role]; ok && p.id == "W" {
					idle = f1(float64(kb) / 1024)
				}
				P("| %s | %s | %s | %s | %s | %s | %s | %s |", p.id, w.role, size,
					f1(median(r.cpuPer1k(size, q0, p.id, w.role))), f1(median(r.cpuPer1k(size, 0, p.id, w.role))),
					f1(median(r.rssMiB(size, q0, p.id, w.role))), f1(r.maxRSSMiB(p.id, w.role)), idle)
			}
		}
	}
	P("")
	P("Raw fortio JSON and wrk output of every run: `%s/raw/` (not committed).", displayPath(r.cfg.RunDir))
	P("")

	if r.goBench != "" {
		P("### Go benchmarks (`make bench-go`)")
		P("")
		P("```text")
		P("%s", r.goBench)
		P("```")
		P("")
	}
	r.rendered = b.String()
	return r.rendered
}

// headline is the summary table: Weft against direct (issue 3's ratios) and
// against the nginx pair (issue 11's targets) for the first size and rate.
func (r *report) headline(P func(string, ...any), size string, qps int) {
	hasB := r.hasPath("B")
	absPct := func(path, pct string) float64 { return r.pooled(size, qps, path).pct[pct] }
	val := func(path string, f func(string) float64) float64 {
		if path == "B" && !hasB {
			return math.NaN()
		}
		return f(path)
	}
	row := func(metric string, f func(path string) float64, format func(float64) string, withA bool, target string, met func(b, w float64) bool) {
		a, b, w := math.NaN(), val("B", f), val("W", f)
		if withA {
			a = f("A")
		}
		m := ""
		if met != nil && !(math.IsNaN(w) || (hasB && math.IsNaN(b))) {
			m = check(met(b, w))
		}
		P("| %s | %s | %s | %s | %s | %s | %s | %s |", metric, format(a), format(b), format(w), ratio(w, b), ratio(w, a), target, m)
	}
	P("### Summary: Weft pair against direct and the nginx pair (%s, %d requests/s)", workloadLabel(size), qps)
	P("")
	P("| metric | direct (A) | nginx pair (B) | Weft pair (W) | W / B | W / A | issue 11 target | met |")
	P("|---|---:|---:|---:|---:|---:|---|---|")
	for _, pct := range []string{"50", "99"} {
		row("p"+pct+" latency, µs", func(p string) float64 { return absPct(p, pct) }, f0, true, "", nil)
	}
	for _, pct := range percentiles {
		added := func(p string) float64 { return r.addedPooled(size, qps, p, pct) }
		if pct != "99" {
			row("added p"+pct+" latency, µs", added, f0, false, "", nil)
			continue
		}
		b, w := val("B", added), added("W")
		verdict, diff := r.p99Verdict(size, qps)
		target := "< 500 µs"
		if hasB {
			target += " and ≤ nginx"
		}
		P("| added p99 latency, µs | – | %s | %s | %s | – | %s | %s |", f0(b), f0(w), ratio(w, b), target, fVerdict(verdict))
		ivB := "–"
		if hasB {
			ivB = fIv(r.addedCI(size, qps, "B", "99"))
		}
		P("| added p99, %.1f %% interval, µs | | %s | %s | | | | |", 100*verdictLevel, ivB, fIv(r.addedCI(size, qps, "W", "99")))
		if hasB {
			P("| added p99, W − B, µs (interval; it resolves a difference of %s %% of B's added p99) | | | %s (%s) | | | ≤ 0 | %s |",
				share(diff.HalfWidth(), b), signed(w-b), fIv(diff), fVerdict(notAboveZero(diff)))
		}
		perRound := func(p string) float64 { return median(r.added(size, qps, p, "99")) }
		row("added p99 per round (fortio's p99 of each run), median over rounds, µs", perRound, f0, false, "", nil)
	}
	row("requests/s at saturation", func(p string) float64 { return median(r.satRPS(size, p)) }, f0, true,
		"≥ 0.60 × nginx", func(b, w float64) bool { return hasB && w >= 0.6*b })
	for _, role := range []string{"client proxy", "server proxy"} {
		row("CPU ms per 1000 requests at saturation, "+role, func(p string) float64 { return median(r.cpuPer1k(size, 0, p, role)) }, f1, false,
			"≤ 2 × nginx", func(b, w float64) bool { return hasB && w <= 2*b })
	}
	for _, role := range []string{"client proxy", "server proxy"} {
		row(fmt.Sprintf("CPU ms per 1000 requests at %d requests/s, %s", qps, role), func(p string) float64 { return median(r.cpuPer1k(size, qps, p, role)) }, f1, false, "", nil)
	}
	for _, role := range []string{"client proxy", "server proxy"} {
		row(fmt.Sprintf("peak RSS at %d requests/s, %s, MiB", qps, role), func(p string) float64 { return median(r.rssMiB(size, qps, p, role)) }, f1, false,
			"≤ 20 MB", func(_, w float64) bool { return w*1.048576 <= 20 })
	}
	for _, role := range []string{"client proxy", "server proxy"} {
		if kb, ok := r.idleRSS[role]; ok {
			v := float64(kb) / 1024
			P("| idle RSS (ready, before load), %s, MiB | | | %s | | | ≤ 15 MB | %s |", role, f1(v), check(v*1.048576 <= 15))
		}
	}
	for _, role := range []string{"client proxy", "server proxy"} {
		if kb, ok := r.idleRSS[role+anonSuffix]; ok {
			P("| of which anonymous (RssAnon: heap, stacks; the rest is the executable's file pages, shared by every sidecar on a node), %s, MiB | | | %s | | | | |", role, f1(float64(kb)/1024))
		}
	}
	P("")
	if hasB {
		var hb, hw string
		wTLS := false
		for _, p := range r.paths {
			switch p.id {
			case "B":
				hb = p.hop
			case "W":
				hw, wTLS = p.hop, p.hopTLS
			}
		}
		if !wTLS {
			P("Not yet like for like: the nginx hop is %s, the Weft hop is %s (mTLS between sidecars arrives with the identity work).", hb, hw)
			P("")
		}
	}
}

// perWorkload is the Weft pair against the nginx pair for every workload
// and rate: added latency, saturation and CPU per request, as ratios.
func (r *report) perWorkload(P func(string, ...any)) {
	P("### Weft pair / nginx pair, every workload")
	P("")
	P("Added latency is the pooled percentile over direct's (A); W / B below 1 means the Weft pair is better; after the added p99, whether W's is at most B's (yes / **no** / not resolved, the summary's rule).")
	P("")
	head := "| workload |"
	sep := "|---|"
	for _, q := range r.cfg.QPS {
		head += fmt.Sprintf(" added p50 @ %d/s, W / B (µs) | added p99 @ %d/s, W / B (µs) |", q, q)
		sep += "---:|---:|"
	}
	head += " saturation req/s, W / B | CPU per 1000 req at saturation, client proxy W / B | server proxy W / B |"
	sep += "---:|---:|---:|"
	P("%s", head)
	P("%s", sep)
	pair := func(w, b float64) string { return fmt.Sprintf("%s / %s (%s)", f0(w), f0(b), ratio(w, b)) }
	for _, size := range r.cfg.Sizes {
		row := "| " + workloadLabel(size) + " |"
		for _, q := range r.cfg.QPS {
			for _, pct := range []string{"50", "99"} {
				cell := pair(r.addedPooled(size, q, "W", pct), r.addedPooled(size, q, "B", pct))
				if pct == "99" {
					cell += ", " + fVerdict(notAboveZero(r.wMinusB(size, q)))
				}
				row += " " + cell + " |"
			}
		}
		row += " " + pair(median(r.satRPS(size, "W")), median(r.satRPS(size, "B"))) + " |"
		for _, role := range []string{"client proxy", "server proxy"} {
			w, b := median(r.cpuPer1k(size, 0, "W", role)), median(r.cpuPer1k(size, 0, "B", role))
			row += fmt.Sprintf(" %s / %s (%s) |", f1(w), f1(b), ratio(w, b))
		}
		P("%s", row)
	}
	P("")
}

// method is the Method line: how the figures were measured and how the
// verdict on added p99 is decided.
func (r *report) method(P func(string, ...any)) {
	sizes, qpss := r.cfg.Sizes, r.cfg.QPS
	head := fmt.Sprintf("%s at %d requests/s", sizes[0], qpss[0])
	durs := fmt.Sprintf("%s per run", r.cfg.LatDur)
	if d := r.cfg.latDur(sizes[0], qpss[0]); d != r.cfg.LatDur {
		durs = fmt.Sprintf("%s per run (%s for %s, the summary's row)", r.cfg.LatDur, d, head)
	}
	P("- **Method:** %d round(s); in each round every path runs each load in turn (interleaved), so drift hits all paths alike. "+
		"Latency: fortio, constant %s requests/s, uniform spacing, %d keep-alive connections (HTTP/1.1; h2c for the HTTP/2 and gRPC workloads, fortio -h2 / -grpc), %s, "+
		"every request's latency from fortio's access log (1 µs). "+
		"Saturation: wrk -t1 -c%d for HTTP/1.1, fortio -qps 0 with as many connections for HTTP/2 and gRPC (wrk speaks neither), %s per run. "+
		"**Latency percentiles pool the requests of all rounds** (order statistic x(⌈pN⌉) of the pooled N); *added* is the path's pooled percentile minus direct's. "+
		"Uncertainty: each pooled percentile's standard error is read off its distribution-free 95 %% interval (order statistics at ranks Np ∓ 1.96·√(D·Np(1−p)); D ≥ 1 is the design effect of %s blocks of requests, how much more the share below the quantile varies between blocks than binomially: slow requests come in bursts) as its length over 2·1.96; "+
		"a difference of two percentiles gets the interval d ∓ z·√(SE₁² + SE₂²). "+
		"**Verdict on added p99** (issue 11: under 500 µs and no worse than nginx's): *yes* when the interval of W's added p99 lies below 500 µs and that of W − B (direct cancels: W's p99 minus B's) at or below 0, "+
		"**no** when either lies wholly on the wrong side, *not resolved* otherwise (the difference is smaller than this run can tell); both intervals at %.1f %%, so the verdict holds with at least %.0f %% confidence (Bonferroni). "+
		"The per-round columns (fortio's percentile of each run, median and min..max over rounds) are for comparison only. "+
		"Other figures are medians over rounds. "+
		"CPU: utime+stime from /proc/<pid>/stat (10 ms ticks) over the run, divided by requests served; nginx counts master + worker. "+
		"Peak RSS: VmHWM, reset (clear_refs 5) before each run. This run took %s.",
		r.cfg.Rounds, joinInts(qpss), r.cfg.LatConns, durs, r.cfg.SatConns, r.cfg.SatDur,
		blockLen, 100*verdictLevel, 100*confidence, r.elapsed.Round(time.Second))
}

// latencyTable is the latency of every path at one workload and rate.
func (r *report) latencyTable(P func(string, ...any), size string, q int) {
	P("### Latency at %d requests/s, %s (µs)", q, workloadLabel(size))
	P("")
	P("Pooled over rounds; the interval is at %.1f %%; D is the design effect at p99 (1: no burstiness beyond binomial).", 100*verdictLevel)
	P("")
	P("| path | achieved req/s | requests | p50 | p90 | p99 | p99.9 | added p50 | added p90 | added p99 | added p99, interval | added p99.9 | added p99 per round: median (min..max) | D | errors |")
	P("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|")
	for _, p := range r.paths {
		pl := r.pooled(size, q, p.id)
		var qps []float64
		var errs int64
		for _, s := range r.pick(size, q, p.id) {
			qps = append(qps, s.lat.QPS)
			errs += s.lat.Errors()
		}
		row := fmt.Sprintf("| %s | %s | %d |", p.id, f1(median(qps)), pl.n)
		for _, pct := range percentiles {
			row += " " + f0(pl.pct[pct]) + " |"
		}
		if p.id == "A" {
			row += " – | – | – | – | – | – |"
		} else {
			for _, pct := range percentiles {
				row += " " + f0(r.addedPooled(size, q, p.id, pct)) + " |"
				if pct == "99" {
					row += " " + fIv(r.addedCI(size, q, p.id, pct)) + " |"
				}
			}
			per := r.added(size, q, p.id, "99")
			lo, hi := minMax(per)
			row += fmt.Sprintf(" %s (%s..%s) |", f0(median(per)), f0(lo), f0(hi))
		}
		row += fmt.Sprintf(" %s | %d |", f1(pl.deff["99"]), errs)
		P("%s", row)
	}
	P("")
}

func (r *report) pinning() string {
	if r.cfg.LoadCPU < 0 {
		return "none"
	}
	return fmt.Sprintf("load generator (fortio, wrk) on CPU %d; upstream, every proxy and the control plane on CPU %d (taskset; "+
		"Go processes with GOMAXPROCS=1, nginx with one worker each)", r.cfg.LoadCPU, r.cfg.ServerCPU)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " and ")
}

// spliceInto replaces the generated section of file with md (between the
// markers), creating the file or the section when missing.
func spliceInto(file, md string) error {
	section := beginMarker + "\n\n" + md + "\n" + endMarker + "\n"
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("datapath: %w", err)
	}
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + strings.TrimPrefix(s[j+len(endMarker):], "\n")
	case len(s) == 0:
		s = "# Weft benchmarks\n\n" + section
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + section
	}
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	return nil
}

// environment describes the machine and the tools, one line each.
func environment(ctx context.Context, cfg Config) []string {
	first := func(argv ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "not found"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	lines := []string{
		fmt.Sprintf("**Machine:** %d × %s%s, %s", runtime.NumCPU(), cpu, mem, kernel),
		fmt.Sprintf("**Software:** %s; %s; fortio %s; %s", runtime.Version(), first("nginx", "-v"), first(cfg.Fortio, "version"), strings.SplitN(first(cfg.Wrk, "--version"), " Copyright", 2)[0]),
	}
	return lines
}

// displayPath shortens p to a path relative to the working directory when it
// lies below it, so the committed report does not name this machine's checkout.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " / ")
}

// busyLoad reports whether a loadAverage string's 1-minute figure is above 1.5.
func busyLoad(s string) bool {
	one, _, _ := strings.Cut(s, " ")
	v, err := strconv.ParseFloat(one, 64)
	return err == nil && v > 1.5
}
