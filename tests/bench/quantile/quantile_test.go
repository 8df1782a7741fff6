package quantile

import (
	"math"
	"testing"
)

const eps = 1e-9

func TestHistogramQuantile(t *testing.T) {
	// N = 100: 10 in [100,110], 30 in [110,120], 60 in [120,140].
	one := Histogram{{100, 110, 10}, {110, 120, 30}, {120, 140, 60}}
	// Two runs whose buckets overlap: 10 in [100,110] and 30 in [110,120];
	// 5 in [105,110], 5 in [110,120] and 50 in [200,250]. N = 100.
	merged := Merge(Histogram{{100, 110, 10}, {110, 120, 30}}, Histogram{{105, 110, 5}, {110, 120, 5}, {200, 250, 50}})
	// A value alone at 50 (fortio's first bucket can be a point), 9 in [50,60].
	point := Histogram{{50, 50, 1}, {50, 60, 9}}
	// 5 in [0,10], 5 exactly at 10, 10 in [10,20]: a step inside.
	step := Histogram{{0, 10, 5}, {10, 10, 5}, {10, 20, 10}}
	for _, tc := range []struct {
		name string
		h    Histogram
		p    float64
		want float64
	}{
		{"one run, p50: 120 + (50-40)/60*20", one, 0.5, 120 + 10.0/60*20},
		{"one run, p10: an edge", one, 0.1, 110},
		{"one run, p99: 120 + 59/60*20", one, 0.99, 120 + 59.0/60*20},
		{"one run, p0", one, 0, 100},
		{"one run, p100", one, 1, 140},
		{"merged, p50: 10+30+5+5 at or below 120", merged, 0.5, 120},
		{"merged, p75: 200 + 25/50*50", merged, 0.75, 225},
		// [105,110] holds 5 of the first run and 5 of the second: 2 per µs.
		{"merged, p6: 105 + 1/2", merged, 0.06, 105.5},
		{"point mass, p5", point, 0.05, 50},
		{"point mass, p50: 50 + 4/9*10", point, 0.5, 50 + 4.0/9*10},
		{"step, p25: the 5 in [0,10] reach 10", step, 0.25, 10},
		{"step, p50: at the step", step, 0.5, 10},
		{"step, p75: 10 + 5/10*10", step, 0.75, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.Quantile(tc.p); math.Abs(got-tc.want) > eps {
				t.Errorf("Quantile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if !math.IsNaN(Histogram(nil).Quantile(0.5)) {
		t.Error("empty histogram: want NaN")
	}
}

func TestMerge(t *testing.T) {
	m := Merge(Histogram{{110, 120, 30}, {100, 110, 10}}, Histogram{{100, 110, 5}, {90, 95, 0}})
	want := Histogram{{100, 110, 15}, {110, 120, 30}}
	if len(m) != len(want) {
		t.Fatalf("Merge = %v, want %v", m, want)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Errorf("bucket %d = %v, want %v", i, m[i], want[i])
		}
	}
	if m.Count() != 45 {
		t.Errorf("Count = %d, want 45", m.Count())
	}
}

// seq is the values 1..n, value v in block blockOf(v).
func seq(n int, blockOf func(v int) int) *Sample {
	obs := make([]Obs, 0, n)
	for v := n; v >= 1; v-- { // unsorted on purpose
		obs = append(obs, Obs{Value: float64(v), Block: blockOf(v)})
	}
	return NewSample(obs)
}

func oneBlock(int) int { return 0 }

func TestSampleQuantile(t *testing.T) {
	s := seq(100, oneBlock)
	for _, tc := range []struct{ p, want float64 }{
		{0.5, 50},
		{0.99, 99},
		{0.995, 100},
		{0.001, 1},
		{0, 1},
		{1, 100},
		{0.901, 91},
		{0.07, 7}, // 0.07 * 100 is 7.000000000000001 in floating point
	} {
		if got := s.Quantile(tc.p); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	// 0.99 * 8000 is 7920.000000000001 in floating point: still rank 7920.
	if got := seq(8000, oneBlock).Quantile(0.99); got != 7920 {
		t.Errorf("Quantile(0.99) of 1..8000 = %v, want 7920", got)
	}
}

func TestDesignEffect(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *Sample
		p    float64
		want float64
	}{
		{"one block: nothing to measure", seq(20, oneBlock), 0.5, 1},
		// Odd and even values: 5 of each block's 10 at or below the median 10.
		{"interleaved blocks: no more than binomial", seq(20, func(v int) int { return v % 2 }), 0.5, 1},
		// 1..10 and 11..20: counts at or below 10 are 10 and 0, F = 0.5;
		// cluster variance 2/1 * (5² + 5²) / 20² = 0.25; binomial 0.25/20.
		{"blocks split at the median", seq(20, func(v int) int { return (v - 1) / 10 }), 0.5, 20},
		// Block 0: 1..300 and 501..700; block 1: 301..500 and 701..1000.
		// At or below 500: 300 and 200, F = 0.5; 2 * (50² + 50²) / 1000² = 0.01;
		// binomial 0.25 / 1000 = 0.00025.
		{"lopsided blocks", seq(1000, lopsided), 0.5, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.DesignEffect(tc.p); math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("DesignEffect(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func lopsided(v int) int {
	if v <= 300 || (v > 500 && v <= 700) {
		return 0
	}
	return 1
}

func TestSampleInterval(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		s    *Sample
		p    float64
		conf float64
		want Interval
	}{
		// z = 1.959964; h = z·√(1000·0.5·0.5) = 30.99: ranks 469 and 531.
		{"median of 1..1000", seq(1000, oneBlock), 0.5, 0.95, Interval{469, 531}},
		// h = z·√(1000·0.99·0.01) = 6.167: ranks ⌊983.83⌋ and ⌈996.17⌉.
		{"p99 of 1..1000", seq(1000, oneBlock), 0.99, 0.95, Interval{983, 997}},
		// h = 1.959 over 999: the upper rank 1001 is past the data.
		{"p99.9 of 1..1000: unbounded above", seq(1000, oneBlock), 0.999, 0.95, Interval{997, inf}},
		// z(0.99) = 2.575829; h = 2.5758·√250 = 40.73: ranks 459 and 541.
		{"median, 99 %", seq(1000, oneBlock), 0.5, 0.99, Interval{459, 541}},
		// D = 40: h = 1.959964·√(40·250) = 195.996: ranks 304 and 696.
		{"median, lopsided blocks", seq(1000, lopsided), 0.5, 0.95, Interval{304, 696}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Interval(tc.p, tc.conf); got != tc.want {
				t.Errorf("Interval(%v, %v) = %v, want %v", tc.p, tc.conf, got, tc.want)
			}
		})
	}
}

func TestEstimateAndDiff(t *testing.T) {
	// The 95 % interval of the median of 1..1000 is 469..531:
	// SE = 62 / (2 · 1.959964) = 15.8166.
	e := seq(1000, oneBlock).Estimate(0.5)
	if e.Value != 500 || math.Abs(e.SE-62/(2*1.959964)) > 1e-4 {
		t.Errorf("Estimate = %+v, want {500 15.8166}", e)
	}
	// p99.9 of 1..1000 is unbounded above: so is its standard error.
	if e := seq(1000, oneBlock).Estimate(0.999); !math.IsInf(e.SE, 1) {
		t.Errorf("Estimate(0.999).SE = %v, want +Inf", e.SE)
	}
	for _, tc := range []struct {
		name string
		a, b Estimate
		conf float64
		want Interval
	}{
		// 10 ∓ 1.959964 · √(3² + 4²) = 10 ∓ 9.79982.
		{"95 %", Estimate{100, 3}, Estimate{90, 4}, 0.95, Interval{0.20018, 19.79982}},
		// −10 ∓ 2.241403 · 5 = −10 ∓ 11.207015.
		{"97.5 %, a below b", Estimate{90, 3}, Estimate{100, 4}, 0.975, Interval{-21.207015, 1.207015}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.a, tc.b, tc.conf)
			if math.Abs(got.Lo-tc.want.Lo) > 1e-5 || math.Abs(got.Hi-tc.want.Hi) > 1e-5 {
				t.Errorf("Diff = %v, want %v", got, tc.want)
			}
		})
	}
	if d := Diff(Estimate{1, math.Inf(1)}, Estimate{0, 1}, 0.95); !math.IsInf(d.Lo, -1) || !math.IsInf(d.Hi, 1) {
		t.Errorf("Diff with an unbounded estimate = %v, want unbounded", d)
	}
}

func TestVerdicts(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		got  Verdict
		want Verdict
	}{
		{"a wholly below b", AtMost(Interval{1, 2}, Interval{3, 4}), Met},
		{"a touches b", AtMost(Interval{1, 3}, Interval{3, 4}), Met},
		{"a wholly above b", AtMost(Interval{5, 6}, Interval{3, 4}), NotMet},
		{"overlap", AtMost(Interval{1, 5}, Interval{3, 4}), Unresolved},
		{"a unbounded above", AtMost(Interval{1, inf}, Interval{3, 4}), Unresolved},
		{"below the limit", Below(Interval{100, 400}, 500), Met},
		{"reaches the limit", Below(Interval{100, 500}, 500), Unresolved},
		{"at or above the limit", Below(Interval{500, 600}, 500), NotMet},
		{"all met", All(Met, Met), Met},
		{"one unresolved", All(Met, Unresolved), Unresolved},
		{"one not met wins", All(Unresolved, NotMet, Met), NotMet},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if d := (Interval{10, 20}).Sub(Interval{1, 2}); d != (Interval{8, 19}) {
		t.Errorf("Sub = %v, want {8 19}", d)
	}
	if l := Level(0.95, 3); math.Abs(l-(1-0.05/3)) > eps {
		t.Errorf("Level = %v", l)
	}
}
