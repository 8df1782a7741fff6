package gateway

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/egress"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"

	"github.com/weftmesh/weft/sidecar/filter/budget"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/outlier"
	"github.com/weftmesh/weft/sidecar/filter/retry"
	"github.com/weftmesh/weft/sidecar/lb"
)

// The gateway applies to an HTTP destination the policies of the
// resilience work, compiled by the same packages the outbound path uses
// from a route and a cluster: the route timeout and retry policy
// (filter/timeout, filter/retry), the circuit-breaker limits and retry
// budget (filter/budget) and outlier detection (filter/outlier), with the
// whole destination as the one "endpoint" of its breaker (the gateway
// tries the external addresses in order, it does not balance over them).

// policy is one destination's compiled resilience configuration (pure:
// what Validate checks).
type policy struct {
	timeout time.Duration
	retry   *retry.Policy
	limits  budget.Thresholds
	outlier outlier.Config
}

// compilePolicy reads the Envoy JSON an HTTP destination carries; a
// destination without it gets no retries, no timeout and the default
// limits (a table from before these fields).
func compilePolicy(d *egress.Destination) (*policy, error) {
	p := &policy{limits: budget.DefaultThresholds(), outlier: outlier.DefaultConfig()}
	var err error
	if d.Timeout != "" {
		if p.timeout, err = time.ParseDuration(d.Timeout); err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
	}
	var rp *route.RetryPolicy
	if len(d.RetryPolicy) > 0 {
		rp = &route.RetryPolicy{}
		if err := protojson.Unmarshal(d.RetryPolicy, rp); err != nil {
			return nil, fmt.Errorf("retryPolicy: %w", err)
		}
	}
	if p.retry, err = retry.Compile(rp, d.RetryNonIdempotent); err != nil {
		return nil, fmt.Errorf("retryPolicy: %w", err)
	}
	if len(d.CircuitBreakers) > 0 {
		cb := &cluster.CircuitBreakers{}
		if err := protojson.Unmarshal(d.CircuitBreakers, cb); err != nil {
			return nil, fmt.Errorf("circuitBreakers: %w", err)
		}
		p.limits = budget.FromCluster(cb)
	}
	if len(d.OutlierDetection) > 0 {
		od := &cluster.OutlierDetection{}
		if err := protojson.Unmarshal(d.OutlierDetection, od); err != nil {
			return nil, fmt.Errorf("outlierDetection: %w", err)
		}
		p.outlier = outlier.FromCluster(od)
	}
	return p, nil
}

// resilience is a policy bound to the destination's lasting state: what a
// request uses.
type resilience struct {
	*policy
	limits  *budget.Limits
	breaker *outlier.Host
	stats   *metrics.Stats
}

// destState outlives configuration changes, as a router cluster's hosts
// do: in-flight counts, the breaker (recreated when its configuration
// changes) and the counters.
type destState struct {
	counters budget.Counters
	mu       sync.Mutex
	cfg      outlier.Config
	breaker  *outlier.Host
}

// statsName is the cluster name the destination's counters are exported
// under (weft_cluster_*{cluster="egress|<name>:<port>"}).
func statsName(d *egress.Destination) string {
	return "egress|" + d.Name + ":" + strconv.FormatUint(uint64(d.Port), 10)
}

// bind attaches the lasting state of d (kept in states) to p.
func bind(states *sync.Map, d *egress.Destination, p *policy, reg *metrics.Registry, log *slog.Logger) *resilience {
	name := statsName(d)
	v, ok := states.Load(name)
	if !ok {
		v, _ = states.LoadOrStore(name, new(destState))
	}
	ds := v.(*destState)
	var stats *metrics.Stats
	if reg != nil {
		stats = reg.For(name)
	} else {
		stats = new(metrics.Stats)
	}
	ds.mu.Lock()
	if ds.breaker == nil || ds.cfg != p.outlier {
		det := outlier.New(name, p.outlier, stats, log)
		det.SetSize(1)
		ds.cfg, ds.breaker = p.outlier, det.Host(name, new(lb.State))
	}
	br := ds.breaker
	ds.mu.Unlock()
	return &resilience{policy: p, limits: budget.New(p.limits, &ds.counters), breaker: br, stats: stats}
}
