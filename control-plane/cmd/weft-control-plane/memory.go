package main

import (
	"os"
	"runtime/debug"

	"github.com/weftmesh/weft/api/memlimit"
)

// The control plane's memory is mostly long-lived (per-proxy stream state
// and snapshots, the shapes' translations) plus short bursts (a push, a
// reconnect storm). Go's default GOGC=100 lets the heap grow to twice the
// live heap before a collection, and the resident set keeps that
// high-water mark; at thousands of proxies that doubles the memory per
// proxy. So, unless the operator set them:
//
//   - GOGC defaults to defaultGOGC: the heap goal is 1.5 × the live heap;
//   - the soft memory limit (GOMEMLIMIT) defaults to memLimitPercent of the
//     container's cgroup v2 memory limit, so the GC works harder near the
//     limit instead of the kernel killing the control plane.
//
// GOGC or GOMEMLIMIT in the environment always wins (the runtime reads
// them itself).
//
// After a connect burst (a rollout, a restart, a reconnect storm: at least
// --max-connecting proxies got their first configuration and none is
// connecting any more) the xds server calls returnMemory: the burst's
// garbage is freed heap the runtime would otherwise keep, since its
// scavenger retains up to 1.1 × the heap goal, and the goal was set while
// the burst was live.
const (
	defaultGOGC     = 50
	memLimitPercent = 75
)

// gcSettings returns the GC percent and soft memory limit to set, given
// the environment's GOGC and GOMEMLIMIT and the cgroup's memory.max
// content; 0 means leave the runtime's setting alone.
func gcSettings(gogc, gomemlimit, cgroupMax string) (percent int, limit int64) {
	if gogc == "" {
		percent = defaultGOGC
	}
	limit, _ = memlimit.Soft(gomemlimit, cgroupMax, memLimitPercent, 0)
	return percent, limit
}

// applyGCSettings sets the runtime's GC percent and soft memory limit (see
// gcSettings) and returns what it set (0: left alone).
func applyGCSettings() (percent int, limit int64) {
	b, _ := os.ReadFile(memlimit.CgroupMemoryMax)
	percent, limit = gcSettings(os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"), string(b))
	if percent > 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return percent, limit
}

// returnMemory forces a collection and returns every free page to the OS
// (debug.FreeOSMemory): one GC of the live heap, once per connect burst.
func returnMemory() { debug.FreeOSMemory() }
