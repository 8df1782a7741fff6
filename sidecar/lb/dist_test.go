package lb

import (
	"fmt"
	"math"
	"testing"
	"time"

	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

func weighted(ws ...uint32) []*Endpoint {
	out := make([]*Endpoint, len(ws))
	for i, w := range ws {
		out[i] = &Endpoint{Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w, Health: core.HealthStatus_HEALTHY}
	}
	return out
}

// share picks n times and returns each endpoint's share of the picks.
func share(p Picker, n int, c func(i int) *Context) map[string]float64 {
	counts := map[string]int{}
	for i := range n {
		ep := p.PickFor(c(i))
		if ep == nil {
			counts[""]++
			continue
		}
		counts[ep.Addr]++
	}
	out := map[string]float64{}
	for k, v := range counts {
		out[k] = float64(v) / float64(n)
	}
	return out
}

func TestDistributions(t *testing.T) {
	const n = 10000
	plain := func(int) *Context { return &Context{} }
	tests := []struct {
		name    string
		picker  Picker
		weights []uint32
		tol     float64
	}{
		{"round robin", NewRoundRobin(weighted(1, 1, 1)), []uint32{1, 1, 1}, 0.005},
		{"weighted round robin", NewRoundRobin(weighted(1, 2, 7)), []uint32{1, 2, 7}, 0.005},
		{"random weighted", NewRandom(weighted(1, 3)), []uint32{1, 3}, 0.03},
		{"least request idle", NewLeastRequest(weighted(1, 1, 1, 1)), []uint32{1, 1, 1, 1}, 0.03},
		{"ring hash without key", NewRingHash(weighted(1, 1), 1024), []uint32{1, 1}, 0.03},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := share(tc.picker, n, plain)
			var total float64
			for _, w := range tc.weights {
				total += float64(w)
			}
			for i, w := range tc.weights {
				addr := fmt.Sprintf("10.0.0.%d:80", i+1)
				want := float64(w) / total
				if math.Abs(got[addr]-want) > tc.tol {
					t.Errorf("%s: share %.4f, want %.4f ± %.3f (all: %v)", addr, got[addr], want, tc.tol, got)
				}
			}
		})
	}
}

func TestNeverPicksUnusableOrBlocked(t *testing.T) {
	eps := weighted(1, 1, 1, 1)
	eps[0].Health = core.HealthStatus_DRAINING
	eps[1].Health = core.HealthStatus_UNHEALTHY
	for _, pol := range []Policy{PolicyRoundRobin, PolicyLeastRequest, PolicyRandom, PolicyRingHash, PolicyLeastLatency} {
		t.Run(pol.String(), func(t *testing.T) {
			p := New(Config{Policy: pol, MinRingSize: 1024}, eps)
			eps[2].State.Block(time.Now().Add(time.Hour).UnixNano())
			defer eps[2].State.Unblock()
			for i := range 1000 {
				ep := p.PickFor(&Context{Hash: HashKeyInt(i), HasHash: true})
				if ep != eps[3] {
					t.Fatalf("picked %v, want only %s", ep, eps[3].Addr)
				}
			}
			eps[3].State.Block(time.Now().Add(time.Hour).UnixNano())
			defer eps[3].State.Unblock()
			if ep := p.PickFor(&Context{}); ep != nil {
				t.Fatalf("everything blocked: picked %s", ep.Addr)
			}
		})
	}
}

func TestAvoidsTried(t *testing.T) {
	for _, pol := range []Policy{PolicyRoundRobin, PolicyLeastRequest, PolicyRandom, PolicyRingHash, PolicyLeastLatency} {
		t.Run(pol.String(), func(t *testing.T) {
			eps := weighted(1, 1, 1)
			p := New(Config{Policy: pol, MinRingSize: 1024}, eps)
			for i := range 300 {
				c := &Context{Hash: HashKeyInt(i), HasHash: true, Tried: []*Endpoint{eps[0], eps[1]}}
				if ep := p.PickFor(c); ep != eps[2] {
					t.Fatalf("picked %v, want the one untried endpoint", ep)
				}
			}
			c := &Context{Tried: eps}
			if ep := p.PickFor(c); ep == nil {
				t.Fatal("only tried endpoints left: want one of them, got nil")
			}
		})
	}
}

func TestRingHashStableAndMovesOneNth(t *testing.T) {
	const keys = 10000
	eps := weighted(1, 1, 1, 1)
	before := NewRingHash(eps, 1024)
	owner := make([]*Endpoint, keys)
	for k := range keys {
		c := &Context{Hash: HashKeyInt(k), HasHash: true}
		owner[k] = before.PickFor(c)
		for range 3 {
			if again := before.PickFor(c); again != owner[k] {
				t.Fatalf("key %d: %s then %s", k, owner[k].Addr, again.Addr)
			}
		}
	}
	after := NewRingHash(eps[:3], 1024) // eps[3] leaves
	moved, onLeaver := 0, 0
	for k := range keys {
		got := after.PickFor(&Context{Hash: HashKeyInt(k), HasHash: true})
		if owner[k] == eps[3] {
			onLeaver++
			continue
		}
		if got != owner[k] {
			moved++
		}
	}
	t.Logf("keys on the leaving endpoint: %d/%d; other keys moved: %d", onLeaver, keys, moved)
	if moved != 0 {
		t.Errorf("%d keys not on the leaving endpoint moved", moved)
	}
	if frac := float64(onLeaver) / keys; frac < 0.18 || frac > 0.32 {
		t.Errorf("leaving endpoint held %.3f of the keys, want about 1/4", frac)
	}
}

func TestLeastLatencyAvoidsSlow(t *testing.T) {
	eps := weighted(1, 1, 1)
	p := NewLeastLatency(eps)
	now := time.Now().UnixNano()
	for _, ep := range eps {
		ep.State = new(State)
		ep.State.observe(float64(time.Millisecond), now)
	}
	eps[0].State.observe(float64(50*time.Millisecond), now)
	got := share(p, 3000, func(int) *Context { return &Context{Now: now} })
	t.Logf("shares: %v", got)
	if got[eps[0].Addr] > 0.05 {
		t.Errorf("slow endpoint got %.3f of the picks, want < 0.05", got[eps[0].Addr])
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	eps := weighted(1, 1)
	p := NewLeastRequest(eps)
	for range 10 {
		eps[0].State.Begin()
	}
	got := share(p, 1000, func(int) *Context { return &Context{} })
	if got[eps[1].Addr] < 0.99 {
		t.Errorf("idle endpoint got %.3f, want all (P2C with two endpoints compares both)", got[eps[1].Addr])
	}
}

func TestLocalityTiers(t *testing.T) {
	eps := weighted(1, 1, 1)
	eps[0].Locality = Locality{Region: "r1", Zone: "z1"}
	eps[1].Locality = Locality{Region: "r1", Zone: "z2"}
	eps[2].Locality = Locality{Region: "r2", Zone: "z9"}
	p := New(Config{Policy: PolicyRoundRobin, Local: &Locality{Region: "r1", Zone: "z1"}}, eps)
	for range 10 {
		if ep := p.PickFor(&Context{}); ep != eps[0] {
			t.Fatalf("same zone first: got %s", ep.Addr)
		}
	}
	eps[0].State.Block(math.MaxInt64)
	for range 10 {
		if ep := p.PickFor(&Context{}); ep != eps[1] {
			t.Fatalf("then same region: got %s", ep.Addr)
		}
	}
	eps[1].State.Block(math.MaxInt64)
	if ep := p.PickFor(&Context{}); ep != eps[2] {
		t.Fatalf("then all: got %v", ep)
	}
}

// TestRoundRobinSharesSkippedTurns: the turns of endpoints that may not be
// picked go to the others in proportion to their weights, not to the one
// that follows in the schedule.
func TestRoundRobinSharesSkippedTurns(t *testing.T) {
	const n = 10000
	tests := []struct {
		name    string
		weights []uint32
		blocked []int
		want    []float64
	}{
		{"two of four ejected", []uint32{1, 1, 1, 1}, []int{0, 3}, []float64{0, 0.5, 0.5, 0}},
		{"one of four ejected", []uint32{1, 1, 1, 1}, []int{1}, []float64{1.0 / 3, 0, 1.0 / 3, 1.0 / 3}},
		{"the heavy one ejected", []uint32{1, 2, 7}, []int{2}, []float64{1.0 / 3, 2.0 / 3, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := weighted(tc.weights...)
			p := NewRoundRobin(eps)
			for _, i := range tc.blocked {
				eps[i].State.Block(math.MaxInt64)
			}
			got := share(p, n, func(int) *Context { return &Context{} })
			for i, want := range tc.want {
				if math.Abs(got[eps[i].Addr]-want) > 0.01 {
					t.Errorf("%s: share %.4f, want %.4f (all: %v)", eps[i].Addr, got[eps[i].Addr], want, got)
				}
			}
		})
	}
}
