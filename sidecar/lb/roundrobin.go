package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

var _ Picker = (*RoundRobin)(nil)

// maxSchedule bounds the weighted round-robin schedule; larger weight sums
// are scaled down (each endpoint keeps at least one slot).
const maxSchedule = 4096

// RoundRobin hands out its endpoints in turn, each as often as its weight
// says: a precomputed smooth weighted round-robin schedule (nginx's
// algorithm, so heavy endpoints are interleaved rather than bunched) walked
// by one atomic counter.
type RoundRobin struct {
	eps      []*Endpoint
	schedule []uint16
	next     atomic.Uint64
}

// NewRoundRobin returns a weighted round-robin picker over the usable
// endpoints of eps. The starting position is random so that many sidecars
// with the same endpoint list do not all send their first request to the
// same endpoint.
func NewRoundRobin(eps []*Endpoint) *RoundRobin {
	u := usable(eps)
	rr := &RoundRobin{eps: u, schedule: schedule(u)}
	if len(rr.schedule) > 1 {
		rr.next.Store(rand.Uint64N(uint64(len(rr.schedule))))
	}
	return rr
}

// schedule builds the smooth weighted round-robin order of eps.
func schedule(eps []*Endpoint) []uint16 {
	if len(eps) == 0 {
		return nil
	}
	ws := make([]int64, len(eps))
	var total int64
	equal := true
	for i, ep := range eps {
		ws[i] = int64(weight(ep))
		total += ws[i]
		equal = equal && ws[i] == ws[0]
	}
	if equal {
		out := make([]uint16, len(eps))
		for i := range out {
			out[i] = uint16(i) //nolint:gosec // G115: at most 65535 endpoints per cluster.
		}
		return out
	}
	if total > maxSchedule {
		scaled := int64(0)
		for i := range ws {
			ws[i] = max(1, ws[i]*maxSchedule/total)
			scaled += ws[i]
		}
		total = scaled
	}
	cur := make([]int64, len(ws))
	out := make([]uint16, 0, total)
	for range total {
		best := 0
		for i := range ws {
			cur[i] += ws[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, uint16(best)) //nolint:gosec // G115: at most 65535 endpoints per cluster.
	}
	return out
}

// Pick implements Picker.
func (rr *RoundRobin) Pick() *Endpoint { return rr.PickFor(&Context{}) }

// PickFor implements Picker.
func (rr *RoundRobin) PickFor(c *Context) *Endpoint {
	switch len(rr.eps) {
	case 0:
		return nil
	case 1:
		if ep := rr.eps[0]; c.ok(ep, false) {
			return ep
		}
		return nil
	}
	n := uint64(len(rr.schedule))
	first := rr.next.Add(1) - 1
	return pickTwice(c, func(c *Context, strict bool) *Endpoint {
		// A slot whose endpoint may not be picked (ejected, draining
		// counts elsewhere, already tried) is skipped by taking the next
		// slot from the shared counter: the others then share its turns in
		// proportion to their weights. Walking to the neighbouring slot
		// instead would hand every skipped turn to whichever endpoint
		// follows it in the schedule (with 2 of 4 ejected, one survivor got
		// 3/4 of the requests).
		pos := first
		for range n {
			if ep := rr.eps[rr.schedule[pos%n]]; c.ok(ep, strict) {
				return ep
			}
			pos = rr.next.Add(1) - 1
		}
		// Concurrent pickers took the other slots: walk them all once.
		for i := range n {
			if ep := rr.eps[rr.schedule[(pos+i)%n]]; c.ok(ep, strict) {
				return ep
			}
		}
		return nil
	})
}

// Endpoints implements Picker.
func (rr *RoundRobin) Endpoints() []*Endpoint { return rr.eps }
