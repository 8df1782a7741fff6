// Package metrics holds the counters of the resilience decisions the
// outbound request path makes, per cluster: retries, retry budget
// exhaustion, overflows of each circuit-breaker limit, breaker state
// changes, ejections and timeouts. Counters are atomics; a Stats survives
// config changes (the router hands the same one to every table that has
// the cluster), and Source lets metrics exporters read them all.
//
// It also holds the Prometheus golden metrics the telemetry package
// observes: Requests (weft_requests_total and the duration and size
// histograms, prom.go) and TCP (weft_tcp_* for proxied TCP streams,
// tcp.go), both labelled by source and destination workload, namespace,
// service and identity, with each label set's children cached so a
// request or a write costs no label hashing.
package metrics

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Stats are one cluster's counters.
type Stats struct {
	// Requests counts requests routed to the cluster; Attempts counts
	// tries sent to an endpoint (first tries and retries).
	Requests atomic.Uint64
	Attempts atomic.Uint64
	// Retries counts retries made; RetryBudgetExhausted counts retries
	// not made because the retry budget or max_retries was used up.
	Retries              atomic.Uint64
	RetryBudgetExhausted atomic.Uint64
	// Overflow counts requests failed fast by each circuit-breaker limit.
	OverflowMaxConnections     atomic.Uint64
	OverflowMaxPendingRequests atomic.Uint64
	OverflowMaxRequests        atomic.Uint64
	// NoHealthy counts requests answered 503 because no endpoint was
	// pickable (none healthy, or every one ejected).
	NoHealthy atomic.Uint64
	// Ejections counts endpoints ejected by outlier detection;
	// EjectionsOverflow counts ejections refused by max_ejection_percent;
	// BreakerOpened, BreakerHalfOpened and BreakerClosed count breaker
	// state changes.
	Ejections         atomic.Uint64
	EjectionsOverflow atomic.Uint64
	BreakerOpened     atomic.Uint64
	BreakerHalfOpened atomic.Uint64
	BreakerClosed     atomic.Uint64
	// RequestTimeouts counts route timeouts (504); PerTryTimeouts counts
	// tries cut by per_try_timeout.
	RequestTimeouts atomic.Uint64
	PerTryTimeouts  atomic.Uint64
}

// Snapshot returns the counters by name (Prometheus-style suffixes).
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"requests_total":                      s.Requests.Load(),
		"attempts_total":                      s.Attempts.Load(),
		"retries_total":                       s.Retries.Load(),
		"retry_budget_exhausted_total":        s.RetryBudgetExhausted.Load(),
		"overflow_max_connections_total":      s.OverflowMaxConnections.Load(),
		"overflow_max_pending_requests_total": s.OverflowMaxPendingRequests.Load(),
		"overflow_max_requests_total":         s.OverflowMaxRequests.Load(),
		"no_healthy_upstream_total":           s.NoHealthy.Load(),
		"ejections_total":                     s.Ejections.Load(),
		"ejections_overflow_total":            s.EjectionsOverflow.Load(),
		"breaker_opened_total":                s.BreakerOpened.Load(),
		"breaker_half_opened_total":           s.BreakerHalfOpened.Load(),
		"breaker_closed_total":                s.BreakerClosed.Load(),
		"request_timeouts_total":              s.RequestTimeouts.Load(),
		"per_try_timeouts_total":              s.PerTryTimeouts.Load(),
	}
}

// Source is what an exporter reads: every cluster's counters.
type Source interface {
	// Clusters returns the cluster names with counters, sorted.
	Clusters() []string
	// Stats returns a cluster's counters, or nil.
	Stats(cluster string) *Stats
}

var _ Source = (*Registry)(nil)

// Registry keeps one Stats per cluster name for the sidecar's lifetime
// (clusters removed and added again keep counting).
type Registry struct {
	mu    sync.Mutex
	stats map[string]*Stats
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{stats: map[string]*Stats{}} }

// For returns the cluster's Stats, creating them on first use. It is called
// when tables are compiled, not per request.
func (r *Registry) For(cluster string) *Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats[cluster]
	if s == nil {
		s = new(Stats)
		r.stats[cluster] = s
	}
	return s
}

// Clusters implements Source.
func (r *Registry) Clusters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.stats))
}

// Stats implements Source.
func (r *Registry) Stats(cluster string) *Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats[cluster]
}
