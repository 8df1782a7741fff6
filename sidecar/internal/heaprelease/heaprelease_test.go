package heaprelease

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

// fake is a runtime the test drives: allocs grow by what each tick says.
type fake struct {
	s        Sample
	released int
}

func newFake(r *Releaser) *fake {
	f := &fake{s: Sample{Cycles: 3, Live: 4 * mib, Objects: 5 * mib, Unused: mib, Free: 2 * mib}}
	r.read = func() Sample { return f.s }
	r.release = func() {
		f.released++
		f.s.Cycles += 2
		f.s.Objects, f.s.Unused, f.s.Free = f.s.Live, 0, 0
	}
	return f
}

// TestTick: ticks one second apart, each allocating perSec[i] bytes;
// wantAt lists the ticks (0-based, the first only samples) that release.
func TestTick(t *testing.T) {
	burst, steady1k := uint64(40*mib), uint64(600<<10)
	rep := func(v uint64, n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	cat := func(parts ...[]uint64) []uint64 {
		var out []uint64
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		perSec []uint64
		edit   func(*fake)
		wantAt []int
	}{
		{name: "steady saturation", perSec: rep(burst, 30)},
		{name: "steady 1000 requests/s", perSec: rep(steady1k, 30)},
		{name: "idle", perSec: rep(0, 30)},
		{name: "saturation then idle releases once", perSec: cat(rep(burst, 5), rep(0, 30)), wantAt: []int{6}},
		{name: "saturation then 1000 requests/s releases once", perSec: cat(rep(burst, 5), rep(steady1k, 30)), wantAt: []int{6}},
		{name: "a trickle that stops is no burst", perSec: cat(rep(mib, 5), rep(0, 10))},
		{name: "a dip of less than the drop factor", perSec: cat(rep(burst, 5), rep(burst/3, 10), rep(burst, 5))},
		{
			name:   "nothing to release: the drop is spent",
			perSec: cat(rep(burst, 5), rep(0, 3), rep(steady1k, 20)),
			edit: func(f *fake) {
				f.s.Objects, f.s.Unused, f.s.Free = f.s.Live, 0, mib
			},
		},
		{
			name:   "no GC cycle yet: start-up is left alone",
			perSec: cat(rep(burst, 2), rep(0, 10)),
			edit:   func(f *fake) { f.s.Cycles = 0 },
		},
		{
			name:   "a second drop within the gap waits for it",
			perSec: cat(rep(burst, 3), rep(0, 2), rep(burst, 3), rep(0, 10)),
			// released at tick 4; the second drop at tick 9 waits until
			// tick 14, 10 s after the first.
			wantAt: []int{4, 14},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Policy{}, nil)
			f := newFake(r)
			if tc.edit != nil {
				tc.edit(f)
			}
			t0 := time.Unix(1000, 0)
			var got []int
			for i := 0; i <= len(tc.perSec); i++ {
				if i > 0 {
					f.s.Allocs += tc.perSec[i-1]
					if f.s.Objects-f.s.Live < 2*mib && tc.edit == nil {
						f.s.Objects += tc.perSec[i-1] / 4 // garbage piles up
					}
				}
				if r.Tick(t0.Add(time.Duration(i) * time.Second)) {
					got = append(got, i)
				}
			}
			if !equal(got, tc.wantAt) {
				t.Errorf("released at ticks %v, want %v", got, tc.wantAt)
			}
			if f.released != len(tc.wantAt) || r.Releases() != int64(len(tc.wantAt)) {
				t.Errorf("release ran %d times, Releases %d, want %d", f.released, r.Releases(), len(tc.wantAt))
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReleasable(t *testing.T) {
	s := Sample{Live: 4 * mib, Objects: 5 * mib, Unused: mib, Free: 3 * mib}
	if got := s.Releasable(); got != 5*mib {
		t.Errorf("Releasable = %d, want %d", got, 5*mib)
	}
	// Objects below the last mark's live heap (freed since): none of it.
	s.Objects = 3 * mib
	if got := s.Releasable(); got != 4*mib {
		t.Errorf("Releasable = %d, want %d", got, 4*mib)
	}
}

var sink [][]byte

// TestReleaseReturnsTheBurst runs the real runtime: a burst allocates and
// drops 64 MiB (GOGC=100 lets the heap grow to several times what it
// keeps live), ticks see it and then the drop, and the release must
// leave less of the heap mapped than the burst left.
func TestReleaseReturnsTheBurst(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC() // a cycle has run
	r := New(Policy{}, nil)
	t0 := time.Unix(1000, 0)
	r.Tick(t0)
	for range 64 {
		sink = append(sink, make([]byte, mib))
		if len(sink) > 16 {
			sink = sink[1:]
		}
	}
	sink = nil
	if r.Tick(t0.Add(time.Second)) {
		t.Fatal("released during the burst")
	}
	before := r.read()
	if before.Releasable() < DefaultMinReleasable {
		t.Fatalf("the burst left only %d bytes releasable", before.Releasable())
	}
	if !r.Tick(t0.Add(2 * time.Second)) {
		t.Fatalf("no release after the drop (rate 0, peak %d, releasable %d)", r.peak, before.Releasable())
	}
	after := r.read()
	mapped := func(s Sample) uint64 { return s.Objects + s.Unused + s.Free }
	if mapped(after)+before.Releasable()/2 > mapped(before) {
		t.Errorf("heap mapped %d -> %d bytes with %d releasable: not returned", mapped(before), mapped(after), before.Releasable())
	}
	// Nothing more to do while idle.
	for i := 3; i < 30; i++ {
		if r.Tick(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("released again at tick %d", i)
		}
	}
}

// TestAfterGC: the channel Run waits on closes once a GC cycle has run.
func TestAfterGC(t *testing.T) {
	done := afterGC()
	runtime.GC()
	<-done // the test's deadline bounds the wait
}
