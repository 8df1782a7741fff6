package outlier

import (
	"testing"
	"time"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/lb"
)

func fail(t *testing.T, h *Host, n int) {
	t.Helper()
	for range n {
		done, ok := h.Allow()
		if !ok {
			t.Fatal("refused while closed")
		}
		done(false)
	}
}

// waitUnblocked polls s until it no longer blocks and returns how long
// after since (UnixNano) that was, on the clock Blocked reads.
func waitUnblocked(s *lb.State, since int64) time.Duration {
	for {
		now := time.Now().UnixNano()
		if !s.Blocked(now) {
			return time.Duration(now - since)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBreakerCycle(t *testing.T) {
	const base = 100 * time.Millisecond
	st := new(metrics.Stats)
	d := New("c", Config{Consecutive5xx: 3, BaseEjection: base, MaxEjection: 10 * base, MaxEjectionPercent: 50}, st, nil)
	d.SetSize(2)
	s := new(lb.State)
	h := d.Host("a", s)

	fail(t, h, 2)
	if s.Blocked(time.Now().UnixNano()) {
		t.Fatal("ejected after 2 of 3 failures")
	}
	// Bounds are read on the clock Blocked reads (wall time, ns), from an
	// instant taken before the ejecting call: the ejection starts after
	// it, so the lower bound cannot be undercut by the test's own timing.
	ejected := time.Now().UnixNano()
	fail(t, h, 1)
	if !s.Blocked(time.Now().UnixNano()) || st.Ejections.Load() != 1 {
		t.Fatalf("not ejected after 3 failures (ejections %d)", st.Ejections.Load())
	}
	// Fails fast: the breaker refuses while open.
	if _, ok := h.Allow(); ok {
		t.Fatal("open breaker allowed a request")
	}
	// Half-open after base: one probe; it fails: ejected for 2 × base. The
	// lower bounds are the property; the upper bounds only leave room for a
	// busy machine.
	if el := waitUnblocked(s, ejected); el < base || el > base+time.Second {
		t.Errorf("first ejection lasted %s, want %s", el, base)
	}
	done, ok := h.Allow()
	if !ok {
		t.Fatal("half-open refused the probe")
	}
	if _, ok := h.Allow(); ok {
		t.Fatal("half-open allowed a second request while the probe is in flight")
	}
	again := time.Now().UnixNano()
	done(false)
	if el := waitUnblocked(s, again); el < 2*base || el > 2*base+time.Second {
		t.Errorf("second ejection lasted %s, want %s", el, 2*base)
	}
	// Recovery: the probe succeeds, the breaker closes.
	done, ok = h.Allow()
	if !ok {
		t.Fatal("probe refused")
	}
	done(true)
	if h.State() != "closed" || s.Blocked(time.Now().UnixNano()) || d.Ejected() != 0 {
		t.Fatalf("after a good probe: %s, ejected %d", h.State(), d.Ejected())
	}
	if st.BreakerOpened.Load() != 2 || st.BreakerHalfOpened.Load() != 2 || st.BreakerClosed.Load() != 1 {
		t.Errorf("state changes: opened %d half-opened %d closed %d", st.BreakerOpened.Load(), st.BreakerHalfOpened.Load(), st.BreakerClosed.Load())
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	st := new(metrics.Stats)
	d := New("c", Config{Consecutive5xx: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectionPercent: 50}, st, nil)
	d.SetSize(4)
	var states []*lb.State
	for _, a := range []string{"a", "b", "c", "d"} {
		s := new(lb.State)
		states = append(states, s)
		fail(t, d.Host(a, s), 1)
	}
	blocked := 0
	for _, s := range states {
		if s.Blocked(time.Now().UnixNano()) {
			blocked++
		}
	}
	if blocked != 2 || st.EjectionsOverflow.Load() != 2 {
		t.Errorf("%d of 4 ejected (overflow %d), want 2 (50%%)", blocked, st.EjectionsOverflow.Load())
	}
	// One endpoint may always be ejected.
	d1 := New("one", Config{Consecutive5xx: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectionPercent: 10}, nil, nil)
	d1.SetSize(1)
	s := new(lb.State)
	fail(t, d1.Host("x", s), 1)
	if !s.Blocked(time.Now().UnixNano()) {
		t.Error("a single endpoint was not ejected")
	}
}

func TestFailurePercentage(t *testing.T) {
	d := New("c", Config{FailurePercent: 50, FailureVolume: 10, Interval: time.Hour, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectionPercent: 100}, nil, nil)
	d.SetSize(1)
	s := new(lb.State)
	h := d.Host("a", s)
	for i := range 9 {
		done, _ := h.Allow()
		done(i%2 == 0)
	}
	if s.Blocked(time.Now().UnixNano()) {
		t.Fatal("ejected below the request volume")
	}
	done, _ := h.Allow()
	done(false)
	if !s.Blocked(time.Now().UnixNano()) {
		t.Fatal("not ejected at 50% failures over 10 requests")
	}
}
