// Package datapath is the data-path benchmark (`make bench-data`, driven by
// cmd/weft-bench): one upstream measured direct (A), through an nginx pair
// with mTLS between them (B) and through a Weft sidecar pair (W), with the
// same load generators and pinning, in interleaved rounds.
//
// Run starts every process, checks each path answers, warms up, then for
// each round, workload and rate runs fortio at a constant rate against each
// path in turn (and wrk or fortio -qps 0 for saturation), sampling CPU time
// and peak RSS of each process from /proc. fortio writes its JSON report
// (histogram, percentiles) and an access log with every request's latency;
// the report (report.go) pools the latency runs of a path over rounds with
// package quantile: pooled percentiles, a confidence interval for each, and
// the three-valued verdict (yes / no / not resolved) on issue 11's added-p99
// target. The markdown goes into BENCHMARKS.md between its generated markers.
package datapath
