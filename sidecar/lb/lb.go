package lb

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Endpoint is one upstream instance of a cluster, as the transport dials it.
// Endpoints are built once per EDS update and never modified afterwards.
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
	// ConnectTimeout bounds a dial to this endpoint (the cluster's
	// connect_timeout); zero means the transport's default.
	ConnectTimeout time.Duration
}

// Usable reports whether an endpoint with health status h may receive
// requests: HEALTHY, or UNKNOWN (no health information).
func Usable(h core.HealthStatus) bool {
	return h == core.HealthStatus_HEALTHY || h == core.HealthStatus_UNKNOWN
}

// Picker chooses an endpoint for one request.
type Picker interface {
	// Pick returns the endpoint for the next request, or nil when the
	// cluster has no usable endpoint.
	Pick() *Endpoint
	// Endpoints returns the usable endpoints the picker chooses from. The
	// slice is shared: callers must not modify it.
	Endpoints() []*Endpoint
}

var _ Picker = (*RoundRobin)(nil)

// RoundRobin hands out its endpoints in turn.
type RoundRobin struct {
	eps  []*Endpoint
	next atomic.Uint64
}

// NewRoundRobin returns a round-robin picker over the usable endpoints of
// eps. The starting position is random so that many sidecars with the same
// endpoint list do not all send their first request to the same endpoint.
func NewRoundRobin(eps []*Endpoint) *RoundRobin {
	usable := make([]*Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep != nil && Usable(ep.Health) {
			usable = append(usable, ep)
		}
	}
	rr := &RoundRobin{eps: usable}
	if len(usable) > 1 {
		rr.next.Store(rand.Uint64N(uint64(len(usable))))
	}
	return rr
}

// Pick implements Picker.
func (rr *RoundRobin) Pick() *Endpoint {
	n := uint64(len(rr.eps))
	switch n {
	case 0:
		return nil
	case 1:
		return rr.eps[0]
	}
	return rr.eps[(rr.next.Add(1)-1)%n]
}

// Endpoints implements Picker.
func (rr *RoundRobin) Endpoints() []*Endpoint { return rr.eps }
