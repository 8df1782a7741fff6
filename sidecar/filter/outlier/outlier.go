// Package outlier is outlier detection: a circuit breaker per endpoint
// (github.com/sony/gobreaker's two-step breaker) driven by the cluster's
// outlier_detection.
//
// An endpoint's breaker trips after consecutive_5xx failures in a row, or
// when, within one interval, it has served at least
// failure_percentage_request_volume requests of which at least
// failure_percentage_threshold % failed (a failure is a 5xx, a connect
// failure, a reset or a timeout). A trip ejects the endpoint: its lb.State
// is blocked, so no picker chooses it, for n × base_ejection_time (the n-th
// ejection in a row), capped by max_ejection_time. Then it is half-open:
// the first request to pick it is the probe (it stays blocked for everyone
// else while the probe is in flight); a success closes the breaker and
// resets n, a failure ejects it again. At most max_ejection_percent of the
// cluster's endpoints are ejected at once, but one may always be.
//
// gobreaker holds its own small mutex per endpoint (so recording an outcome
// locks that endpoint's breaker only); picking reads lb.State atomics and
// takes no lock.
package outlier

import (
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/lb"
)

// Config is a compiled outlier_detection.
type Config struct {
	// Consecutive5xx > 0 ejects after that many failures in a row.
	Consecutive5xx uint32
	// FailurePercent > 0 ejects an endpoint with at least FailureVolume
	// requests in an interval of which at least FailurePercent % failed.
	FailurePercent, FailureVolume uint32
	Interval                      time.Duration
	BaseEjection, MaxEjection     time.Duration
	MaxEjectionPercent            uint32
}

// Enabled reports whether any detection is on.
func (c Config) Enabled() bool { return c.Consecutive5xx > 0 || c.FailurePercent > 0 }

// DefaultConfig is the contract's default.
func DefaultConfig() Config {
	return Config{
		Consecutive5xx:     mesh.DefaultOutlierConsecutive5xx,
		FailureVolume:      mesh.DefaultOutlierFailurePctMinVolume,
		Interval:           mesh.DefaultOutlierInterval,
		BaseEjection:       mesh.DefaultOutlierBaseEjectionTime,
		MaxEjection:        mesh.DefaultOutlierMaxEjectionTime,
		MaxEjectionPercent: mesh.DefaultOutlierMaxEjectionPercent,
	}
}

// FromCluster reads od (nil: detection off, as in Envoy).
func FromCluster(od *cluster.OutlierDetection) Config {
	if od == nil {
		return Config{}
	}
	c := DefaultConfig()
	c.Consecutive5xx = 0
	if od.GetEnforcingConsecutive_5Xx() == nil || od.GetEnforcingConsecutive_5Xx().GetValue() > 0 {
		c.Consecutive5xx = mesh.DefaultOutlierConsecutive5xx
		if v := od.GetConsecutive_5Xx(); v != nil {
			c.Consecutive5xx = v.GetValue()
		}
	}
	if od.GetEnforcingFailurePercentage().GetValue() > 0 {
		c.FailurePercent = 85 // Envoy's default threshold
		if v := od.GetFailurePercentageThreshold(); v != nil {
			c.FailurePercent = v.GetValue()
		}
		if v := od.GetFailurePercentageRequestVolume(); v != nil {
			c.FailureVolume = v.GetValue()
		}
	}
	if v := od.GetInterval(); v != nil {
		c.Interval = v.AsDuration()
	}
	if v := od.GetBaseEjectionTime(); v != nil {
		c.BaseEjection = v.AsDuration()
	}
	if v := od.GetMaxEjectionTime(); v != nil {
		c.MaxEjection = v.AsDuration()
	}
	if c.MaxEjection < c.BaseEjection {
		c.MaxEjection = c.BaseEjection
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		c.MaxEjectionPercent = v.GetValue()
	}
	return c
}

// Detector is one cluster's outlier detection.
type Detector struct {
	cfg   Config
	stats *metrics.Stats
	log   *slog.Logger
	name  string
	// size is the cluster's endpoint count; ejected how many are ejected
	// or half-open.
	size    atomic.Int64
	ejected atomic.Int64
}

// New returns a detector for cluster name.
func New(name string, cfg Config, stats *metrics.Stats, log *slog.Logger) *Detector {
	if stats == nil {
		stats = new(metrics.Stats)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Detector{cfg: cfg, stats: stats, log: log, name: name}
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// SetSize sets the cluster's endpoint count (called when tables are
// compiled).
func (d *Detector) SetSize(n int) { d.size.Store(int64(n)) }

// Ejected is the number of endpoints ejected or half-open.
func (d *Detector) Ejected() int64 { return d.ejected.Load() }

// reserve takes an ejection slot unless max_ejection_percent forbids it.
func (d *Detector) reserve() bool {
	for {
		cur := d.ejected.Load()
		if cur > 0 && (cur+1)*100 > int64(d.cfg.MaxEjectionPercent)*d.size.Load() {
			d.stats.EjectionsOverflow.Add(1)
			return false
		}
		if d.ejected.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// Host is one endpoint's breaker.
type Host struct {
	d     *Detector
	addr  string
	state *lb.State
	cb    *gobreaker.TwoStepCircuitBreaker
	// ejections is n, the ejections in a row; holding says the host holds
	// one of the detector's ejection slots.
	ejections atomic.Int64
	holding   atomic.Bool
}

// Host returns the breaker of the endpoint at addr whose picking state is
// state.
func (d *Detector) Host(addr string, state *lb.State) *Host {
	h := &Host{d: d, addr: addr, state: state}
	if !d.cfg.Enabled() {
		return h
	}
	st := gobreaker.Settings{
		Name:        addr,
		MaxRequests: 1,
		Timeout:     max(d.cfg.BaseEjection, time.Millisecond),
		ReadyToTrip: func(c gobreaker.Counts) bool {
			trip := d.cfg.Consecutive5xx > 0 && c.ConsecutiveFailures >= d.cfg.Consecutive5xx
			if !trip && d.cfg.FailurePercent > 0 && c.Requests >= d.cfg.FailureVolume && c.Requests > 0 {
				trip = uint64(c.TotalFailures)*100 >= uint64(d.cfg.FailurePercent)*uint64(c.Requests)
			}
			return trip && d.reserve()
		},
		OnStateChange: h.onStateChange,
	}
	if d.cfg.FailurePercent > 0 {
		st.Interval = d.cfg.Interval
	}
	h.cb = gobreaker.NewTwoStepCircuitBreaker(st)
	return h
}

// onStateChange runs under the breaker's mutex: atomics only.
func (h *Host) onStateChange(_ string, from, to gobreaker.State) {
	d := h.d
	now := time.Now()
	switch to {
	case gobreaker.StateOpen:
		if from == gobreaker.StateClosed {
			h.holding.Store(true)
		}
		n := h.ejections.Add(1)
		hold := time.Duration(min(float64(n)*float64(d.cfg.BaseEjection), float64(d.cfg.MaxEjection), math.MaxInt64))
		h.state.Block(now.Add(hold).UnixNano())
		d.stats.Ejections.Add(1)
		d.stats.BreakerOpened.Add(1)
		d.log.Info("endpoint ejected", "cluster", d.name, "endpoint", h.addr, "ejection", n, "for", hold)
	case gobreaker.StateHalfOpen:
		// The probe is on its way: nobody else picks the endpoint.
		h.state.Block(math.MaxInt64)
		d.stats.BreakerHalfOpened.Add(1)
		d.log.Debug("endpoint half-open", "cluster", d.name, "endpoint", h.addr)
	case gobreaker.StateClosed:
		h.ejections.Store(0)
		if h.holding.CompareAndSwap(true, false) {
			d.ejected.Add(-1)
		}
		h.state.Unblock()
		d.stats.BreakerClosed.Add(1)
		d.log.Info("endpoint restored", "cluster", d.name, "endpoint", h.addr)
	}
}

// Done records the outcome of a request allowed by Allow.
type Done func(ok bool)

func noop(bool) {}

// Allow asks whether a request may go to the endpoint now (false: it is
// ejected, or half-open with its probe in flight; pick another) and returns
// the function that records the request's outcome.
func (h *Host) Allow() (Done, bool) {
	if h == nil || h.cb == nil {
		return noop, true
	}
	done, err := h.cb.Allow()
	if err != nil {
		return noop, false
	}
	return Done(done), true
}

// Forget releases the host's ejection slot when its endpoint leaves the
// cluster.
func (h *Host) Forget() {
	if h != nil && h.holding.CompareAndSwap(true, false) {
		h.d.ejected.Add(-1)
	}
}

// State returns the breaker's state name ("closed", "open", "half-open").
func (h *Host) State() string {
	if h == nil || h.cb == nil {
		return "closed"
	}
	return h.cb.State().String()
}

func (c Config) String() string {
	return fmt.Sprintf("consecutive_5xx=%d failure_pct=%d/%d interval=%s base=%s max=%s max_pct=%d",
		c.Consecutive5xx, c.FailurePercent, c.FailureVolume, c.Interval, c.BaseEjection, c.MaxEjection, c.MaxEjectionPercent)
}
