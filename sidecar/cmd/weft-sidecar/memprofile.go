package main

import "strings"

// heapProfileRate is the runtime.MemProfileRate weft-sidecar runs with
// unless GODEBUG sets memprofilerate: 0, heap profiling off. Go samples an
// allocation every 512 KiB by default, and each sampled call stack not
// seen before takes a bucket and a page of the profiler's 1.4 MB hash table
// (random slots): under load, as requests take new paths, those pages
// became resident, 0.7-1 MiB of a sidecar's RSS at 1000 requests/s
// (BENCHMARKS.md, "Heap after a burst"). GODEBUG=memprofilerate=524288
// gives the admin port's /debug/pprof/heap its samples back.
const heapProfileRate = 0

// setsMemProfileRate reports whether godebug (the GODEBUG environment
// variable) sets memprofilerate, which the runtime has then applied.
func setsMemProfileRate(godebug string) bool {
	for kv := range strings.SplitSeq(godebug, ",") {
		if k, _, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "memprofilerate" {
			return true
		}
	}
	return false
}
