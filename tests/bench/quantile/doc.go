// Package quantile pools latency measurements from several runs and says
// how sure a comparison of their percentiles is. The data-path benchmark
// (package datapath) uses it to decide issue 11's latency target.
//
// Two kinds of data come in:
//
//   - Histogram: fortio's -json histogram of one run, buckets [Start, End]
//     with a count each. Merge pools runs; Quantile reads a percentile off the
//     pooled cumulative count, spreading each bucket's count evenly over its
//     range (fortio's own interpolation, so a single run's p99 equals fortio's).
//     fortio's buckets are 10 µs wide only below 110 µs; from 200 µs to 1 ms
//     they are 50 to 100 µs wide, too coarse to tell two p99s 10 % apart.
//   - Sample: every request's latency (fortio's access log, 1 µs resolution)
//     with the block of time it started in. Quantile is the order statistic
//     x(⌈pN⌉); Interval is a distribution-free confidence interval for the
//     population quantile: the order statistics at ranks Np ∓ z·√(D·Np(1−p)),
//     where D ≥ 1 is the design effect of the blocks (DesignEffect). With
//     independent requests D = 1 and this is the usual binomial interval;
//     when slow requests bunch together in time (a GC cycle, another process
//     on the CPU) the share of requests below the quantile varies between
//     blocks more than a binomial would, and D widens the interval by √D
//     (Woodruff's interval with a cluster-robust variance).
//
// Estimate gives a quantile's standard error from the length of that
// interval (as Price and Bonett compare medians), and Diff an interval for
// the difference of two quantiles of independent samples, a − b ∓
// z·√(SEa² + SEb²): narrower than subtracting the two intervals' ends.
//
// Below and AtMost turn intervals into a three-valued verdict: Met when the
// interval lies wholly on the right side, NotMet when wholly on the wrong
// side, and Unresolved when it straddles the line. When a verdict rests on
// k intervals, Level(conf, k) gives each the level that makes all k hold
// together with probability at least conf (Bonferroni).
package quantile
