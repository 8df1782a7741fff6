package main

import "github.com/weftmesh/weft/api/memlimit"

// memLimitPercent of the container's memory limit becomes the Go runtime's
// soft memory limit. The rest is left to what the runtime does not count:
// the executable's file pages (about 14 MB, charged to the container's
// cgroup too) and the kernel's socket buffers.
const memLimitPercent = 75

// softMemoryLimitFloor: a soft limit below it would leave the runtime
// nothing after the executable's pages; none is set then.
const softMemoryLimitFloor = 8 << 20

// softMemoryLimit is memlimit.Soft with the sidecar's percent and floor.
func softMemoryLimit(gomemlimit, cgroupMax string) (int64, bool) {
	return memlimit.Soft(gomemlimit, cgroupMax, memLimitPercent, softMemoryLimitFloor)
}

// applyMemoryLimit sets the runtime's soft memory limit from the
// container's (memlimit.Apply); it returns the limit set (0: none).
func applyMemoryLimit() int64 { return memlimit.Apply(memLimitPercent, softMemoryLimitFloor) }
