// Package heaprelease gives the heap a burst of load left behind back to
// the operating system once the load has dropped, as Envoy's overload
// manager's shrink_heap action and tcmalloc's background release do.
//
// Under a burst (a saturation run: 32 connections, 10-80 MB/s allocated)
// the heap's live part grows (every request in flight holds its buffers:
// the proxy's 32 KiB copy buffer, h2server's 16 KiB write buffer, net/http's
// HTTP/2 request-body scratch of up to 512 KiB to an app that advertises
// large frames), and the pools keep those buffers after the requests are
// done. When the load stops, no allocation comes to start the next GC
// cycle: the heap goal, the pools and the freed pages the runtime retains
// (its scavenger keeps about 10 % above the goal) stay where the burst
// left them. Measured in the benchmark matrix (BENCHMARKS.md), a sidecar
// kept 14-17 MiB of anonymous memory through the next 15 s, at 1000
// requests/s, against ~8 with that load alone.
//
// # When it releases
//
// A Releaser samples runtime/metrics every second (Releaser.Run) and
// releases when all of these hold:
//
//   - the process has run a GC cycle (start-up's heap is left alone: a
//     forced cycle on a sidecar that has only started up leaves more
//     resident, not less; package memtrim);
//   - the allocation rate over the last second fell below a quarter of the
//     highest rate seen since the last release (the load dropped), and
//     that highest rate was at least MinPeakRate (a real burst, not a
//     trickle of probes);
//   - the heap holds at least MinReleasable bytes it does not need: freed
//     pages not yet returned, unused parts of spans, and objects allocated
//     since the last cycle's mark beyond what it left live;
//   - the last release was at least MinGap ago.
//
// Under steady load the rate stays near its peak and nothing happens. A
// drop is decided once: the peak starts again from zero whether the heap
// was released or held too little to bother (a drop within MinGap of the
// last release waits for the gap), so a drop releases at most once, and
// never later under the load that follows it.
//
// # What it does
//
// Two GC cycles, then every free page back to the OS (runtime.GC, then
// debug.FreeOSMemory, which collects once more and scavenges): the first
// cycle moves the pools' buffers to their victim caches, the second frees
// them, and the goal the next cycle aims at is set from the small live
// heap that remains. On an idle sidecar that is a few milliseconds of CPU
// once per drop.
//
// # Goroutines
//
// Run ticks on the caller's goroutine until its context ends, from the
// first GC cycle on (a cleanup on a sentinel object tells it): a sidecar
// that has only started up (its first cycle comes under load, or with the
// runtime's two-minute forced one) runs none of this code, so the
// executable pages memtrim dropped after start-up stay dropped. Tick is
// the decision and the release, for one sample; tests call it directly.
package heaprelease
