// Package bench is the home of Weft's benchmarks (`make bench`).
//
// The data-path benchmark lives in package datapath and is driven by
// cmd/weft-bench; cmd/bench-upstream is the stand-in application server it
// measures against; package quantile holds the statistics its report uses
// (pooled percentiles, their confidence intervals, three-valued verdicts).
// Go testing.B benchmarks stay beside the code they measure
// (for example in the sidecar module) and `make bench` runs them too.
// Results are written to BENCHMARKS.md at the repository root.
package bench
