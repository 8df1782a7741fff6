package lb

import (
	"math/rand/v2"
)

var _ Picker = (*LeastRequest)(nil)

// LeastRequest is the power of two choices on requests in flight: two
// endpoints drawn at random (weighted), the one with fewer requests in flight
// per unit of weight wins. With LeastLatency set the cost is instead the
// peak-EWMA latency × (in-flight + 1) / weight (Linkerd's balancer).
type LeastRequest struct {
	r       *Random
	latency bool
}

// NewLeastRequest returns a P2C least-request picker.
func NewLeastRequest(eps []*Endpoint) *LeastRequest {
	return &LeastRequest{r: NewRandom(eps)}
}

// NewLeastLatency returns a P2C picker on peak-EWMA latency × (in-flight+1).
func NewLeastLatency(eps []*Endpoint) *LeastRequest {
	return &LeastRequest{r: NewRandom(eps), latency: true}
}

func (p *LeastRequest) cost(ep *Endpoint, now int64) float64 {
	n := float64(ep.State.InFlight() + 1)
	if p.latency {
		// An endpoint without a sample costs as if it answered in 1 µs:
		// new endpoints get tried at once.
		return max(ep.State.Latency(now), 1e3) * n / float64(weight(ep))
	}
	return n / float64(weight(ep))
}

// Pick implements Picker.
func (p *LeastRequest) Pick() *Endpoint { return p.PickFor(&Context{}) }

// PickFor implements Picker.
func (p *LeastRequest) PickFor(c *Context) *Endpoint {
	eps := p.r.eps
	switch len(eps) {
	case 0:
		return nil
	case 1:
		if c.ok(eps[0], false) {
			return eps[0]
		}
		return nil
	}
	now := c.now()
	return pickTwice(c, func(c *Context, strict bool) *Endpoint {
		var a, b *Endpoint
		n := len(eps)
		for range 2 {
			// Two distinct candidates: one weighted draw, one other.
			i := p.r.index()
			j := (i + 1 + rand.IntN(n-1)) % n //nolint:gosec // G404: load spreading, not security.
			if c.ok(eps[i], strict) {
				a = eps[i]
			}
			if c.ok(eps[j], strict) {
				if a == nil {
					a = eps[j]
				} else {
					b = eps[j]
				}
			}
			if a != nil {
				break
			}
		}
		if a == nil {
			//nolint:gosec // G404: load spreading, not security.
			return scan(eps, rand.IntN(len(eps)), c, strict)
		}
		if b != nil && p.cost(b, now) < p.cost(a, now) {
			return b
		}
		return a
	})
}

// Endpoints implements Picker.
func (p *LeastRequest) Endpoints() []*Endpoint { return p.r.eps }
