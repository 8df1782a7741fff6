package lb

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
)

var _ Picker = (*RingHash)(nil)

// ringPerWeight is the number of ring entries per unit of weight; with the
// same count whatever the cluster's size, removing an endpoint removes only
// its own entries, so only the keys it held move (about 1/N of them).
const (
	ringPerWeight  = 1024
	maxRingEntries = 1 << 17
)

// RingHash is a consistent-hash ring (Ketama style): each endpoint has
// weight × ringPerWeight points (at least the minimum ring size in all),
// and a request goes to the first endpoint at or after its key's hash. A
// request without a hash key is picked at random.
type RingHash struct {
	eps    []*Endpoint
	hashes []uint64
	owner  []uint32
	rnd    *Random
}

// NewRingHash returns a ring-hash picker over the usable endpoints of eps;
// minRing is the minimum number of ring entries.
func NewRingHash(eps []*Endpoint, minRing int) *RingHash {
	u := usable(eps)
	r := &RingHash{eps: u, rnd: NewRandom(u)}
	if len(u) == 0 {
		return r
	}
	var total int
	for _, ep := range u {
		total += int(weight(ep))
	}
	per := max(ringPerWeight, (minRing+total-1)/total)
	if per*total > maxRingEntries {
		per = max(1, maxRingEntries/total)
	}
	type entry struct {
		h uint64
		i uint32
	}
	entries := make([]entry, 0, per*total)
	for i, ep := range u {
		base := HashKey(ep.Addr)
		for k := range per * int(weight(ep)) {
			entries = append(entries, entry{mix(base + uint64(k)), uint32(i)}) //nolint:gosec // G115: bounded by the endpoint count.
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.i) - int(b.i)
	})
	r.hashes = make([]uint64, len(entries))
	r.owner = make([]uint32, len(entries))
	for i, e := range entries {
		r.hashes[i], r.owner[i] = e.h, e.i
	}
	return r
}

// HashKey hashes a hash-policy value (a header, a cookie, an IP) for
// Context.Hash: FNV-1a, then a 64-bit finalizer.
func HashKey(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return mix(h.Sum64())
}

// HashKeyInt hashes an integer key (tests).
func HashKeyInt(n int) uint64 { return HashKey(strconv.Itoa(n)) }

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Pick implements Picker (no key: random).
func (r *RingHash) Pick() *Endpoint { return r.PickFor(&Context{}) }

// PickFor implements Picker: the owner of the first ring entry at or after
// c.Hash, walking on past blocked (and, while others exist, tried)
// endpoints.
func (r *RingHash) PickFor(c *Context) *Endpoint {
	if len(r.eps) == 0 {
		return nil
	}
	if !c.HasHash {
		return r.rnd.PickFor(c)
	}
	start, _ := slices.BinarySearch(r.hashes, c.Hash)
	return pickTwice(c, func(c *Context, strict bool) *Endpoint {
		n := len(r.hashes)
		seen := 0
		var last uint32 = ^uint32(0)
		for k := 0; k < n && seen < len(r.eps)*4; k++ {
			o := r.owner[(start+k)%n]
			if o == last {
				continue
			}
			last = o
			seen++
			if ep := r.eps[o]; c.ok(ep, strict) {
				return ep
			}
		}
		//nolint:gosec // G404: load spreading, not security.
		return scan(r.eps, rand.IntN(len(r.eps)), c, strict)
	})
}

// Endpoints implements Picker.
func (r *RingHash) Endpoints() []*Endpoint { return r.eps }
