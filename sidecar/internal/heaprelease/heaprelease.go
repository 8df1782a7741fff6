package heaprelease

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Defaults of the policy (Policy's zero fields take them).
const (
	// DefaultInterval is how often Run samples the runtime.
	DefaultInterval = time.Second
	// DefaultMinReleasable is the least the heap must hold beyond its needs
	// for a release (the GC policy's headroom is 1.5 MiB: a steady heap
	// holds about that much garbage and free pages).
	DefaultMinReleasable = 2 << 20
	// DefaultMinPeakRate is the least allocation rate, in bytes per
	// second, that counts as a burst. A sidecar serving 1000 HTTP/1.1
	// requests/s allocates about 0.5-1 MB/s; saturation, or HTTP/2 and gRPC
	// at that rate, 10-80 MB/s.
	DefaultMinPeakRate = 2 << 20
	// DefaultDrop: the load dropped when the rate fell below the peak
	// divided by this.
	DefaultDrop = 4
	// DefaultMinGap is the least time between two releases.
	DefaultMinGap = 10 * time.Second
)

// Policy says when to release; zero fields take the defaults.
type Policy struct {
	MinReleasable uint64
	MinPeakRate   uint64 // bytes per second
	Drop          uint64
	MinGap        time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.MinReleasable == 0 {
		p.MinReleasable = DefaultMinReleasable
	}
	if p.MinPeakRate == 0 {
		p.MinPeakRate = DefaultMinPeakRate
	}
	if p.Drop == 0 {
		p.Drop = DefaultDrop
	}
	if p.MinGap == 0 {
		p.MinGap = DefaultMinGap
	}
	return p
}

// Sample is what a tick reads from the runtime (runtime/metrics names).
type Sample struct {
	Cycles  uint64 // /gc/cycles/total:gc-cycles
	Allocs  uint64 // /gc/heap/allocs:bytes, since the process started
	Live    uint64 // /gc/heap/live:bytes, marked live by the last cycle
	Objects uint64 // /memory/classes/heap/objects:bytes, live and not yet swept dead
	Unused  uint64 // /memory/classes/heap/unused:bytes, in spans, not in objects
	Free    uint64 // /memory/classes/heap/free:bytes, mapped and free, not returned
}

// Releasable is what the heap holds beyond what the last cycle left live:
// free pages not returned, unused span space, and objects past the live
// heap (garbage, or what came since the mark).
func (s Sample) Releasable() uint64 {
	return s.Free + s.Unused + s.Objects - min(s.Objects, s.Live)
}

var sampleNames = [...]string{
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// Releaser releases the heap after a load drop. Its methods are for one
// goroutine at a time (Run's, or a test's); Releases may be read from any.
type Releaser struct {
	policy  Policy
	log     *slog.Logger
	samples []metrics.Sample
	// read and release are the runtime's (tests replace them).
	read    func() Sample
	release func()

	have        bool
	last        Sample
	lastAt      time.Time
	peak        uint64 // highest rate since the last release, bytes/s
	lastRelease time.Time
	releases    atomic.Int64
}

// New returns a Releaser with policy p (zero fields: defaults); log gets
// a debug record per release (nil: none).
func New(p Policy, log *slog.Logger) *Releaser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Releaser{policy: p.withDefaults(), log: log, samples: make([]metrics.Sample, len(sampleNames))}
	for i, n := range sampleNames {
		r.samples[i].Name = n
	}
	r.read = r.readRuntime
	r.release = releaseRuntime
	return r
}

// readRuntime reads the Sample from runtime/metrics.
func (r *Releaser) readRuntime() Sample {
	metrics.Read(r.samples)
	var v [len(sampleNames)]uint64
	for i, s := range r.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return Sample{Cycles: v[0], Allocs: v[1], Live: v[2], Objects: v[3], Unused: v[4], Free: v[5]}
}

// releaseRuntime collects twice (the pools' victim caches go with the
// second cycle) and returns every free page to the OS.
func releaseRuntime() {
	runtime.GC()
	debug.FreeOSMemory()
}

// gcSentinel is allocated for its cleanup, which runs once a GC cycle has
// collected it; the pointer keeps it out of the tiny allocator.
type gcSentinel struct {
	_ *gcSentinel
	_ [16]byte
}

// afterGC returns a channel closed once a GC cycle that started after the
// call has run (its cleanups are run by the runtime's cleanup goroutine).
func afterGC() <-chan struct{} {
	done := make(chan struct{})
	runtime.AddCleanup(new(gcSentinel), func(c chan struct{}) { close(c) }, done)
	return done
}

// Run samples every interval (0: DefaultInterval) until ctx ends,
// starting once the process has run a GC cycle: until then there is
// nothing to release, and an idle sidecar that never collected runs none
// of this code (pages memtrim dropped stay dropped).
func (r *Releaser) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	select {
	case <-ctx.Done():
		return
	case <-afterGC():
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	r.Tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.Tick(now)
		}
	}
}

// Tick reads the runtime at now and releases when the policy says so; it
// reports whether it released.
func (r *Releaser) Tick(now time.Time) bool {
	cur := r.read()
	if !r.decide(now, cur) {
		return false
	}
	start := time.Now()
	r.release()
	r.releases.Add(1)
	after := r.read()
	r.log.Debug("heap released after a load drop", "releasable_bytes", cur.Releasable(),
		"heap_free_after_bytes", after.Free, "took", time.Since(start))
	// The release's own cycles and frees are not load.
	r.last, r.lastAt = after, now
	return true
}

// decide records cur, sampled at now, and reports whether to release.
func (r *Releaser) decide(now time.Time, cur Sample) bool {
	prev, prevAt, had := r.last, r.lastAt, r.have
	r.last, r.lastAt, r.have = cur, now, true
	elapsed := now.Sub(prevAt)
	if !had || elapsed <= 0 || cur.Allocs < prev.Allocs {
		return false
	}
	rate := uint64(float64(cur.Allocs-prev.Allocs) / elapsed.Seconds())
	r.peak = max(r.peak, rate)
	p := r.policy
	if cur.Cycles == 0 || r.peak < p.MinPeakRate || rate*p.Drop >= r.peak {
		return false // no burst, or it goes on
	}
	if !r.lastRelease.IsZero() && now.Sub(r.lastRelease) < p.MinGap {
		return false // the drop waits for the gap
	}
	// One drop, one decision: a heap with little to give back is left
	// alone, and is not released later under the load that follows.
	r.peak = 0
	if cur.Releasable() < p.MinReleasable {
		return false
	}
	r.lastRelease = now
	return true
}

// Releases is how many releases the Releaser made.
func (r *Releaser) Releases() int64 { return r.releases.Load() }
