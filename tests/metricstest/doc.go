// Package metricstest reads a Weft process's Prometheus /metrics for the
// end-to-end suites and compares counters with what a known exchange should
// have moved: one scrape parser, one diff and one set of TCP series names
// shared by tests/e2e/local and tests/e2e/netns.
package metricstest
