package lb

import (
	"math"
	"sync/atomic"
	"time"

	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

// Endpoint is one upstream instance of a cluster, as the transport dials it.
// Endpoints are built once per EDS update and never modified afterwards;
// the mutable load and ejection state lives in State, which the router
// carries over from one table to the next for the same address.
type Endpoint struct {
	// Addr is the workload's own address, ip:port (the EDS address).
	Addr string
	// TargetPort is the workload port in decimal, sent to a peer sidecar in
	// mesh.HeaderTargetPort.
	TargetPort string
	// TunnelAddr is ip:tunnel_port when a sidecar fronts the endpoint
	// (filter_metadata["weft"]["tunnel_port"]); empty when the endpoint is
	// dialled directly.
	TunnelAddr string
	// Workload (name.namespace) and Identity (SPIFFE ID) from the endpoint's
	// metadata; empty when the control plane did not set them.
	Workload string
	Identity string
	// Weight is the endpoint's load_balancing_weight (1 when unset).
	Weight uint32
	// Health is the endpoint's health_status.
	Health core.HealthStatus
	// Locality is the endpoint's EDS locality.
	Locality Locality
	// ConnectTimeout bounds a dial to this endpoint (the cluster's
	// connect_timeout); zero means the transport's default.
	ConnectTimeout time.Duration
	// MTLS is the cluster's upstream mTLS policy (shared by its endpoints);
	// nil when the cluster has no transport socket (h2c tunnel).
	MTLS *MTLS
	// State is the endpoint's load and ejection state; never nil once the
	// endpoint is in a Picker (the constructors fill it in).
	State *State

	// targetPortHdr is []string{TargetPort}, made once when the endpoint
	// enters a Picker (TargetPortHeader).
	targetPortHdr []string
}

// TargetPortHeader returns the value of the target port header for e, a
// one-element slice shared by every request to e once e is in a Picker
// (the transport sets it on each tunnelled request). Callers must not
// modify it; its capacity is 1, so an append copies.
func (e *Endpoint) TargetPortHeader() []string {
	if e.targetPortHdr != nil {
		return e.targetPortHdr
	}
	return []string{e.TargetPort}
}

// MTLS is how the tunnel authenticates the peer sidecar of an endpoint
// (set by the identity issue from the cluster's UpstreamTlsContext).
type MTLS struct {
	// PeerIDs are the SPIFFE IDs the peer may present (the cluster's
	// allowed SANs), sorted.
	PeerIDs []string
	// Key is PeerIDs joined: equal keys share connections.
	Key string
}

// Locality is where an endpoint runs.
type Locality struct {
	Region, Zone, SubZone string
}

// Usable reports whether an endpoint with health status h may receive
// requests: HEALTHY, or UNKNOWN (no health information).
func Usable(h core.HealthStatus) bool {
	return h == core.HealthStatus_HEALTHY || h == core.HealthStatus_UNKNOWN
}

// State is the mutable, shared part of an endpoint: requests in flight,
// the peak-EWMA latency estimate and the ejection deadline. Every field is
// an atomic; nothing here takes a lock.
type State struct {
	inflight atomic.Int64
	// ewma is the latency estimate in nanoseconds (float64 bits); stamp is
	// when it was last updated (unix nanoseconds).
	ewma  atomic.Uint64
	stamp atomic.Int64
	// blockedUntil is the unix-nanosecond time until which the endpoint is
	// not picked (ejected, or half-open with its probe in flight); 0 when
	// it is pickable.
	blockedUntil atomic.Int64
}

// ewmaTau is the decay constant of the peak-EWMA estimate (Linkerd's and
// tower's default).
const ewmaTau = 10 * time.Second

// Begin counts a request that starts on the endpoint.
func (s *State) Begin() { s.inflight.Add(1) }

// End counts a request that ended after rtt; rtt <= 0 records no latency
// sample (the attempt did not reach the endpoint).
func (s *State) End(rtt time.Duration, now int64) {
	s.inflight.Add(-1)
	if rtt > 0 {
		s.observe(float64(rtt), now)
	}
}

// InFlight is the number of requests in flight to the endpoint.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// observe folds one latency sample into the peak EWMA: a sample above the
// estimate replaces it at once (peak sensitivity), a lower one is averaged
// in with a weight that decays with the time since the last sample.
func (s *State) observe(rtt float64, now int64) {
	prev := math.Float64frombits(s.ewma.Load())
	last := s.stamp.Swap(now)
	next := rtt
	if rtt < prev && last != 0 {
		w := math.Exp(-float64(now-last) / float64(ewmaTau))
		next = prev*w + rtt*(1-w)
	}
	s.ewma.Store(math.Float64bits(next))
}

// Latency is the decayed peak-EWMA estimate at now, in nanoseconds (0 before
// the first sample): an endpoint that gets no traffic drifts back toward
// being tried.
func (s *State) Latency(now int64) float64 {
	v := math.Float64frombits(s.ewma.Load())
	if v == 0 {
		return 0
	}
	if el := now - s.stamp.Load(); el > 0 {
		v *= math.Exp(-float64(el) / float64(ewmaTau))
	}
	return v
}

// Block keeps the endpoint from being picked until the given unix-nanosecond
// time (math.MaxInt64: until Unblock).
func (s *State) Block(until int64) { s.blockedUntil.Store(until) }

// Unblock makes the endpoint pickable again.
func (s *State) Unblock() { s.blockedUntil.Store(0) }

// Blocked reports whether the endpoint must not be picked at now.
func (s *State) Blocked(now int64) bool {
	u := s.blockedUntil.Load()
	return u != 0 && now < u
}

// Context is what one pick knows about its request. The zero value picks
// with no hash and nothing to avoid.
type Context struct {
	// Hash is the request's hash_policy key hash; used when HasHash.
	Hash    uint64
	HasHash bool
	// Tried are the endpoints already tried for this request
	// (previous_hosts): avoided while another usable endpoint exists.
	Tried []*Endpoint
	// Now is the unix-nanosecond time of the pick (0: time.Now()).
	Now int64
}

func (c *Context) now() int64 {
	if c.Now == 0 {
		c.Now = time.Now().UnixNano()
	}
	return c.Now
}

// ok reports whether ep may be picked: not blocked and, when strict, not
// already tried.
func (c *Context) ok(ep *Endpoint, strict bool) bool {
	if ep.State.Blocked(c.now()) {
		return false
	}
	if strict {
		for _, t := range c.Tried {
			if t == ep {
				return false
			}
		}
	}
	return true
}

// Picker chooses an endpoint for one request. Implementations are immutable
// snapshots; picking takes no lock.
type Picker interface {
	// Pick returns the endpoint for the next request with no request
	// context, or nil when the cluster has no usable endpoint.
	Pick() *Endpoint
	// PickFor returns the endpoint for a request: never an UNHEALTHY,
	// DRAINING or blocked (ejected) one; one not in c.Tried while such an
	// endpoint exists; nil when nothing is pickable.
	PickFor(c *Context) *Endpoint
	// Endpoints returns the usable endpoints the picker chooses from. The
	// slice is shared: callers must not modify it.
	Endpoints() []*Endpoint
}

// usable keeps the usable endpoints of eps and gives every one a State.
func usable(eps []*Endpoint) []*Endpoint {
	out := make([]*Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep != nil && Usable(ep.Health) {
			if ep.State == nil {
				ep.State = new(State)
			}
			if ep.targetPortHdr == nil {
				ep.targetPortHdr = []string{ep.TargetPort}
			}
			out = append(out, ep)
		}
	}
	return out
}

func weight(ep *Endpoint) uint32 { return max(ep.Weight, 1) }

// pickTwice runs pick strictly (avoiding tried endpoints), then, when that
// finds nothing, allowing tried ones.
func pickTwice(c *Context, pick func(c *Context, strict bool) *Endpoint) *Endpoint {
	if len(c.Tried) > 0 {
		if ep := pick(c, true); ep != nil {
			return ep
		}
	}
	return pick(c, false)
}
