package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is the cgroup v2 memory limit of the container.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// memLimitPercent of the container's memory limit becomes the Go runtime's
// soft memory limit. The rest is left to what the runtime does not count:
// the executable's file pages (about 23 MB, charged to the container's
// cgroup too) and the kernel's socket buffers.
const memLimitPercent = 75

// softMemoryLimit returns the Go soft memory limit for a container whose
// cgroup memory.max reads cgroupMax, or false when there is none to set:
// GOMEMLIMIT is set (the operator decides), or the container has no limit
// ("max", unreadable, unparsable), or the limit is too small to leave the
// runtime anything after the executable's pages.
func softMemoryLimit(gomemlimit, cgroupMax string) (int64, bool) {
	if gomemlimit != "" {
		return 0, false
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64)
	if err != nil || limit <= 0 {
		return 0, false
	}
	soft := limit / 100 * memLimitPercent
	if soft < 8<<20 {
		return 0, false
	}
	return soft, true
}

// applyMemoryLimit sets the runtime's soft memory limit from the
// container's, so that the GC works harder near the limit instead of the
// kernel killing the sidecar; it returns the limit set (0: none).
func applyMemoryLimit() int64 {
	b, _ := os.ReadFile(cgroupMemoryMax)
	soft, ok := softMemoryLimit(os.Getenv("GOMEMLIMIT"), string(b))
	if !ok {
		return 0
	}
	debug.SetMemoryLimit(soft)
	return soft
}
