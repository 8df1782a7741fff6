package quantile

import (
	"math"
	"sort"
)

// Bucket is Count values spread evenly over [Start, End] (µs).
type Bucket struct {
	Start, End float64
	Count      int64
}

// Histogram is a latency histogram; buckets may overlap (a merged one does).
type Histogram []Bucket

// Merge pools histograms: the pooled histogram holds every bucket of each,
// with buckets over the same range added together.
func Merge(hs ...Histogram) Histogram {
	var all Histogram
	for _, h := range hs {
		for _, b := range h {
			if b.Count > 0 {
				all = append(all, b)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Start != all[j].Start {
			return all[i].Start < all[j].Start
		}
		return all[i].End < all[j].End
	})
	var out Histogram
	for _, b := range all {
		if n := len(out); n > 0 && out[n-1].Start == b.Start && out[n-1].End == b.End {
			out[n-1].Count += b.Count
			continue
		}
		out = append(out, b)
	}
	return out
}

// Count is the number of values in h.
func (h Histogram) Count() int64 {
	var n int64
	for _, b := range h {
		n += b.Count
	}
	return n
}

// below is how many values lie below x (strictly, when open; else at or
// below), each bucket's count spread evenly over its range.
func (h Histogram) below(x float64, open bool) float64 {
	var c float64
	for _, b := range h {
		switch {
		case x > b.End || (x == b.End && !open):
			c += float64(b.Count)
		case x > b.Start && b.End > b.Start:
			c += float64(b.Count) * (x - b.Start) / (b.End - b.Start)
		}
	}
	return c
}

// Quantile is the value below which a fraction p of h's values lie, the
// pooled cumulative count interpolated linearly between bucket edges (for a
// single fortio histogram, fortio's own percentile). NaN when h is empty.
func (h Histogram) Quantile(p float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	want := p * float64(n)
	edges := make([]float64, 0, 2*len(h))
	for _, b := range h {
		edges = append(edges, b.Start, b.End)
	}
	sort.Float64s(edges)
	prev, prevCum := edges[0], h.below(edges[0], false)
	if want <= prevCum {
		return prev
	}
	for _, e := range edges[1:] {
		if e == prev {
			continue
		}
		// Between two neighbouring edges the count grows linearly.
		if left := h.below(e, true); want <= left {
			return prev + (want-prevCum)/(left-prevCum)*(e-prev)
		}
		prev, prevCum = e, h.below(e, false)
		if want <= prevCum {
			return e
		}
	}
	return edges[len(edges)-1]
}

// Obs is one measured value and the block (of time) it belongs to.
type Obs struct {
	Value float64
	Block int
}

// Sample is a pool of exact values, sorted.
type Sample struct {
	obs    []Obs
	blocks int
}

// NewSample pools obs (copied).
func NewSample(obs []Obs) *Sample {
	s := &Sample{obs: append([]Obs(nil), obs...)}
	sort.Slice(s.obs, func(i, j int) bool { return s.obs[i].Value < s.obs[j].Value })
	seen := map[int]bool{}
	for _, o := range s.obs {
		seen[o.Block] = true
	}
	s.blocks = len(seen)
	return s
}

// N is the number of values.
func (s *Sample) N() int { return len(s.obs) }

// Blocks is the number of distinct blocks.
func (s *Sample) Blocks() int { return s.blocks }

// rank is the k-th smallest value, k from 1.
func (s *Sample) rank(k int) float64 { return s.obs[k-1].Value }

// Quantile is the order statistic x(⌈pN⌉): the smallest value with at least
// a fraction p of the values at or below it. NaN when s is empty.
func (s *Sample) Quantile(p float64) float64 {
	n := len(s.obs)
	if n == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p*float64(n) - 1e-9))
	return s.rank(min(max(k, 1), n))
}

// DesignEffect is how much more the fraction of values at or below the
// p-quantile varies between blocks than it would if every value were
// independent: the cluster-robust variance of that fraction (blocks as
// clusters) over the binomial one, at least 1. It is 1 with fewer than two
// blocks (nothing to measure it from).
func (s *Sample) DesignEffect(p float64) float64 {
	n := len(s.obs)
	if s.blocks < 2 || n == 0 {
		return 1
	}
	x := s.Quantile(p)
	type count struct{ n, below float64 }
	per := map[int]*count{}
	var below float64
	for _, o := range s.obs {
		c := per[o.Block]
		if c == nil {
			c = &count{}
			per[o.Block] = c
		}
		c.n++
		if o.Value <= x {
			c.below++
			below++
		}
	}
	f := below / float64(n)
	if f <= 0 || f >= 1 {
		return 1
	}
	var ss float64
	for _, c := range per {
		d := c.below - f*c.n
		ss += d * d
	}
	k := float64(len(per))
	cluster := k / (k - 1) * ss / (float64(n) * float64(n))
	binomial := f * (1 - f) / float64(n)
	return math.Max(1, cluster/binomial)
}

// Interval is a confidence interval [Lo, Hi]; an end the data cannot bound
// is infinite.
type Interval struct {
	Lo, Hi float64
}

// Sub is the interval of a − b for any a in i and b in o.
func (i Interval) Sub(o Interval) Interval {
	return Interval{Lo: i.Lo - o.Hi, Hi: i.Hi - o.Lo}
}

// HalfWidth is half the interval's length (infinite when an end is).
func (i Interval) HalfWidth() float64 { return (i.Hi - i.Lo) / 2 }

// Interval is a confidence interval at level conf (0.95) for the population
// p-quantile: the order statistics at ranks ⌊Np − h⌋ and ⌈Np + h⌉ with
// h = z·√(D·Np(1−p)), z the two-sided normal quantile of conf and D the
// design effect. An end whose rank falls outside 1..N is infinite.
func (s *Sample) Interval(p, conf float64) Interval {
	n := len(s.obs)
	if n == 0 {
		return Interval{Lo: math.Inf(-1), Hi: math.Inf(1)}
	}
	np := float64(n) * p
	h := z(conf) * math.Sqrt(s.DesignEffect(p)*np*(1-p))
	iv := Interval{Lo: math.Inf(-1), Hi: math.Inf(1)}
	if r := int(math.Floor(np - h)); r >= 1 {
		iv.Lo = s.rank(r)
	}
	if u := int(math.Ceil(np + h)); u <= n {
		iv.Hi = s.rank(u)
	}
	return iv
}

// seLevel is the level of the order-statistic interval an Estimate's
// standard error is read from.
const seLevel = 0.95

// z is the two-sided standard normal quantile of conf.
func z(conf float64) float64 { return math.Sqrt2 * math.Erfinv(conf) }

// Estimate is a quantile estimate and its standard error.
type Estimate struct {
	Value, SE float64
}

// Estimate is the p-quantile with its standard error read off the
// distribution-free interval at 95 %: its length over 2·1.96 (the way Price
// and Bonett (2002) compare medians). Infinite when the interval is.
func (s *Sample) Estimate(p float64) Estimate {
	iv := s.Interval(p, seLevel)
	return Estimate{Value: s.Quantile(p), SE: (iv.Hi - iv.Lo) / (2 * z(seLevel))}
}

// Diff is a confidence interval at conf for the difference of the
// quantiles a and b estimate from independent samples: a − b ∓ z·√(SEa² + SEb²)
// (sample quantiles are asymptotically normal).
func Diff(a, b Estimate, conf float64) Interval {
	d, h := a.Value-b.Value, z(conf)*math.Hypot(a.SE, b.SE)
	return Interval{Lo: d - h, Hi: d + h}
}

// Level is the confidence each of k intervals needs for all k to hold
// together with probability at least conf (Bonferroni).
func Level(conf float64, k int) float64 { return 1 - (1-conf)/float64(k) }

// Verdict is the outcome of a comparison under uncertainty.
type Verdict int

// Verdicts.
const (
	Unresolved Verdict = iota // the intervals overlap: more data needed
	Met
	NotMet
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "met"
	case NotMet:
		return "not met"
	}
	return "not resolved"
}

// AtMost decides "a ≤ b": Met when all of a lies at or below all of b,
// NotMet when all of a lies above all of b.
func AtMost(a, b Interval) Verdict {
	switch {
	case a.Hi <= b.Lo:
		return Met
	case a.Lo > b.Hi:
		return NotMet
	}
	return Unresolved
}

// Below decides "a < limit".
func Below(a Interval, limit float64) Verdict {
	switch {
	case a.Hi < limit:
		return Met
	case a.Lo >= limit:
		return NotMet
	}
	return Unresolved
}

// All is Met when every verdict is, NotMet when any is, else Unresolved.
func All(vs ...Verdict) Verdict {
	out := Met
	for _, v := range vs {
		switch v {
		case NotMet:
			return NotMet
		case Unresolved:
			out = Unresolved
		}
	}
	return out
}
