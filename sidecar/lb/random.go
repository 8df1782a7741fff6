package lb

import (
	"math/rand/v2"
	"slices"
)

var _ Picker = (*Random)(nil)

// Random picks an endpoint at random, with probability proportional to its
// weight (binary search over cumulative weights).
type Random struct {
	eps []*Endpoint
	cum []uint64
}

// NewRandom returns a weighted random picker over the usable endpoints of
// eps.
func NewRandom(eps []*Endpoint) *Random {
	u := usable(eps)
	r := &Random{eps: u, cum: make([]uint64, len(u))}
	var total uint64
	for i, ep := range u {
		total += uint64(weight(ep))
		r.cum[i] = total
	}
	return r
}

// index returns a weighted random index.
func (r *Random) index() int {
	x := rand.Uint64N(r.cum[len(r.cum)-1]) //nolint:gosec // G404: load spreading, not security.
	i, _ := slices.BinarySearch(r.cum, x+1)
	return i
}

// Pick implements Picker.
func (r *Random) Pick() *Endpoint { return r.PickFor(&Context{}) }

// PickFor implements Picker: a few weighted draws, then the first pickable
// endpoint after the last draw.
func (r *Random) PickFor(c *Context) *Endpoint {
	if len(r.eps) == 0 {
		return nil
	}
	return pickTwice(c, func(c *Context, strict bool) *Endpoint {
		i := 0
		for range 3 {
			i = r.index()
			if ep := r.eps[i]; c.ok(ep, strict) {
				return ep
			}
		}
		return scan(r.eps, i, c, strict)
	})
}

// Endpoints implements Picker.
func (r *Random) Endpoints() []*Endpoint { return r.eps }

// scan returns the first endpoint from index start on (wrapping) that c
// accepts.
func scan(eps []*Endpoint, start int, c *Context, strict bool) *Endpoint {
	for k := range eps {
		if ep := eps[(start+k)%len(eps)]; c.ok(ep, strict) {
			return ep
		}
	}
	return nil
}
