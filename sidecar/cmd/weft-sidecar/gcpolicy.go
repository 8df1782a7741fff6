package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// gcHeadroom is the least the heap may grow above what the last GC cycle
// left live before the next cycle starts. Go's default (GOGC=100) lets it
// grow by the live heap itself, 2-3 MB in a sidecar at rest; the cycle
// rate at load is the headroom over the bytes allocated per request, and
// each cycle is a mark phase of a few milliseconds on the sidecar's one P
// that delays the requests arriving during it (the p99/p99.9 of the
// pair). At ~0.5 KB allocated per request per sidecar (requests recycled
// by the pipeline, BENCHMARKS.md) 1.5 MiB is a cycle every ~3 s at 1000
// requests/s (0.3-0.4 per 1000 requests), fewer than 4 MiB gave at the
// ~2.3 KB before (0.5-0.8), for 2.5 MiB less heap: the peak RSS target is
// 20 MB per sidecar at 1000 requests/s, and 2 MiB left it at 18.8-19.3
// MiB. Above twice the headroom the heap may grow by the live heap less
// the headroom (gcPercentFor), which tends to Go's default for a large
// mesh's configuration, so memory never grows by a multiple.
const gcHeadroom = 3 << 19 // 1.5 MiB

// gcStartHeadroom is the headroom before the first cycle (over the
// runtime's 4 MB minimum heap: a 6 MB goal): start-up's garbage (the
// first configuration) is left for one cycle under load or the runtime's
// two-minute forced one. With 4 MiB the first cycle came while the
// sidecar applied its configuration, and the collector's own buffers and
// metadata (~0.7 MiB) were already resident when it became ready (idle
// RSS, BENCHMARKS.md). With 8 MiB, once requests allocated ~0.5 KB, the
// heap grew to that 8 MB goal under load before the first cycle: the peak
// RSS at 1000 requests/s was the start-up headroom's, 1.2 MiB above what
// 6 MiB gives.
const gcStartHeadroom = 6 << 20

// Bounds of the GOGC the policy sets.
const (
	gcPercentMin = 50  // what gcPercentFor gives at twice the headroom; a guard
	gcPercentMax = 800 // a near-empty heap does not get a huge minimum heap
)

// defaultHeapMinimum is the live heap the runtime assumes before its first
// cycle (its 4 MB minimum heap at GOGC=100).
const defaultHeapMinimum = 4 << 20

// gcPercentFor returns the GOGC that puts the next heap goal headroom
// bytes above the live heap, or, once the live heap (with stacks and
// globals) is over twice the headroom, the live heap less the headroom
// above it (Go's default less a constant: continuous at twice the
// headroom, GOGC 50 there, tending to 100): the runtime's goal is live +
// (live + stacks + globals) * GOGC / 100.
func gcPercentFor(live, stacks, globals, headroom uint64) int {
	base := live + stacks + globals
	if base == 0 {
		return gcPercentMax
	}
	grow := max(headroom, base-min(base, headroom))
	p := (grow*100 + base - 1) / base
	return int(min(max(p, gcPercentMin), gcPercentMax))
}

// gcPolicy re-sets GOGC after every GC cycle from the heap that cycle
// left live (gcPercentFor with gcHeadroom). A soft memory limit
// (GOMEMLIMIT, or the container's, memlimit.go) still caps the heap: the
// runtime collects harder near it whatever GOGC says.
//
// It runs on the runtime's cleanup goroutine (a cleanup on a sentinel
// object, re-armed each cycle), so it owns no goroutine; Stop ends it.
type gcPolicy struct {
	headroom uint64
	samples  []metrics.Sample
	percent  atomic.Int64
	cycles   atomic.Int64 // cycles seen, for tests and logs
	stopped  atomic.Bool
}

// gcSentinel is allocated each cycle for its cleanup; the pointer keeps it
// out of the tiny allocator, whose blocks are freed together.
type gcSentinel struct {
	_ *gcSentinel
	_ [16]byte
}

// startGCPolicy installs the policy unless the operator set GOGC (then it
// returns nil and the runtime does what GOGC says).
func startGCPolicy(gogc string, headroom uint64) *gcPolicy {
	if gogc != "" {
		return nil
	}
	p := &gcPolicy{headroom: headroom, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	p.set(gcPercentFor(defaultHeapMinimum, 0, 0, max(headroom, gcStartHeadroom)))
	p.arm()
	return p
}

func (p *gcPolicy) set(percent int) {
	if int64(percent) != p.percent.Load() {
		p.percent.Store(int64(percent))
		debug.SetGCPercent(percent)
	}
}

// arm registers the cleanup that runs once the next cycle has collected
// a fresh sentinel.
func (p *gcPolicy) arm() {
	runtime.AddCleanup(new(gcSentinel), func(p *gcPolicy) { p.cycle() }, p)
}

// cycle runs after a GC cycle: it sets GOGC for the next one and re-arms.
func (p *gcPolicy) cycle() {
	if p.stopped.Load() {
		return
	}
	metrics.Read(p.samples)
	var v [3]uint64
	for i, s := range p.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if v[0] > 0 {
		p.set(gcPercentFor(v[0], v[1], v[2], p.headroom))
	}
	p.cycles.Add(1)
	p.arm()
}

// Percent returns the GOGC the policy set last.
func (p *gcPolicy) Percent() int { return int(p.percent.Load()) }

// Stop ends the policy; GOGC stays at its last value.
func (p *gcPolicy) Stop() { p.stopped.Store(true) }
