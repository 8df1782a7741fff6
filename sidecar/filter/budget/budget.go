// Package budget enforces a cluster's circuit_breakers thresholds for one
// calling sidecar: requests in flight (max_requests), requests waiting for a
// connection (max_pending_requests), upstream connections in use
// (max_connections), and retries in flight: either the retry budget
// (retries <= max(budget_percent × requests in flight, min_retry_concurrency))
// or a fixed max_retries.
//
// Every check is one atomic add, compared and rolled back when over the
// limit: no lock. The Counters survive config changes (the router hands the
// same ones to each new Limits of a cluster), so requests in flight across a
// change stay counted.
package budget

import (
	"sync/atomic"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

// Reason names the limit that refused a request: the value of the
// mesh.HeaderOverloaded response header.
type Reason string

// Reasons.
const (
	MaxConnections     Reason = "max_connections"
	MaxPendingRequests Reason = "max_pending_requests"
	MaxRequests        Reason = "max_requests"
	MaxRetries         Reason = "max_retries"
	RetryBudget        Reason = "retry_budget"
)

// Thresholds are a cluster's limits.
type Thresholds struct {
	MaxConnections, MaxPendingRequests, MaxRequests int64
	// MaxRetries > 0 is a fixed cap on retries in flight; otherwise the
	// budget applies.
	MaxRetries    int64
	BudgetPercent float64
	BudgetMin     int64
}

// DefaultThresholds are the contract's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MaxConnections:     mesh.DefaultMaxConnections,
		MaxPendingRequests: mesh.DefaultMaxPendingRequests,
		MaxRequests:        mesh.DefaultMaxRequests,
		BudgetPercent:      mesh.DefaultRetryBudgetPercent,
		BudgetMin:          mesh.DefaultRetryBudgetMinConcurrency,
	}
}

// FromCluster reads circuit_breakers.thresholds (the DEFAULT priority
// entry); absent fields keep the contract's defaults.
func FromCluster(cb *cluster.CircuitBreakers) Thresholds {
	t := DefaultThresholds()
	for _, th := range cb.GetThresholds() {
		if th.GetPriority() != core.RoutingPriority_DEFAULT {
			continue
		}
		if v := th.GetMaxConnections(); v != nil {
			t.MaxConnections = int64(v.GetValue())
		}
		if v := th.GetMaxPendingRequests(); v != nil {
			t.MaxPendingRequests = int64(v.GetValue())
		}
		if v := th.GetMaxRequests(); v != nil {
			t.MaxRequests = int64(v.GetValue())
		}
		if rb := th.GetRetryBudget(); rb != nil {
			if p := rb.GetBudgetPercent(); p != nil {
				t.BudgetPercent = p.GetValue()
			}
			if m := rb.GetMinRetryConcurrency(); m != nil {
				t.BudgetMin = int64(m.GetValue())
			}
		} else if v := th.GetMaxRetries(); v != nil {
			t.MaxRetries = int64(v.GetValue())
			if t.MaxRetries == 0 {
				t.MaxRetries = -1 // no retries at all
			}
		}
	}
	return t
}

// Counters are the in-flight counts of one cluster.
type Counters struct {
	requests, pending, conns, retries atomic.Int64
}

// Limits are a cluster's thresholds over its counters.
type Limits struct {
	t Thresholds
	c *Counters
}

// New returns limits t over counters c (nil: new counters).
func New(t Thresholds, c *Counters) *Limits {
	if c == nil {
		c = new(Counters)
	}
	return &Limits{t: t, c: c}
}

// Counters returns the limits' counters (to carry them to the next Limits).
func (l *Limits) Counters() *Counters { return l.c }

// Thresholds returns the configured thresholds.
func (l *Limits) Thresholds() Thresholds { return l.t }

func acquire(n *atomic.Int64, limit int64) bool {
	if n.Add(1) > limit {
		n.Add(-1)
		return false
	}
	return true
}

// StartRequest admits a request (max_requests); EndRequest releases it.
func (l *Limits) StartRequest() bool { return acquire(&l.c.requests, l.t.MaxRequests) }

// EndRequest releases a request admitted by StartRequest.
func (l *Limits) EndRequest() { l.c.requests.Add(-1) }

// StartPending admits a try waiting for its connection or stream
// (max_pending_requests); EndPending releases it.
func (l *Limits) StartPending() bool { return acquire(&l.c.pending, l.t.MaxPendingRequests) }

// EndPending releases a try admitted by StartPending.
func (l *Limits) EndPending() { l.c.pending.Add(-1) }

// StartConn admits one more upstream connection in use (max_connections).
func (l *Limits) StartConn() bool { return acquire(&l.c.conns, l.t.MaxConnections) }

// EndConn releases a connection admitted by StartConn.
func (l *Limits) EndConn() { l.c.conns.Add(-1) }

// StartRetry admits a retry, or reports the limit that refused it:
// max_retries when set, else the retry budget.
func (l *Limits) StartRetry() (Reason, bool) {
	if l.t.MaxRetries != 0 {
		if acquire(&l.c.retries, max(l.t.MaxRetries, 0)) {
			return "", true
		}
		return MaxRetries, false
	}
	allowed := max(int64(l.t.BudgetPercent*float64(l.c.requests.Load())/100), l.t.BudgetMin)
	if acquire(&l.c.retries, allowed) {
		return "", true
	}
	return RetryBudget, false
}

// EndRetry releases a retry admitted by StartRetry.
func (l *Limits) EndRetry() { l.c.retries.Add(-1) }

// InFlight returns requests, pending tries, connections and retries in
// flight (tests and debugging).
func (l *Limits) InFlight() (requests, pending, conns, retries int64) {
	return l.c.requests.Load(), l.c.pending.Load(), l.c.conns.Load(), l.c.retries.Load()
}
