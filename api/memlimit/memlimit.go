package memlimit

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// CgroupMemoryMax is the cgroup v2 memory limit of the container.
const CgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// Soft returns percent % of the limit that cgroupMax (the content of
// memory.max) gives, or false when there is none to set: gomemlimit (the
// GOMEMLIMIT environment variable) is set, the container has no limit
// ("max", unreadable, unparsable), or the result is below floor.
func Soft(gomemlimit, cgroupMax string, percent int, floor int64) (int64, bool) {
	if gomemlimit != "" {
		return 0, false
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64)
	if err != nil || limit <= 0 {
		return 0, false
	}
	soft := limit / 100 * int64(percent)
	if soft < floor {
		return 0, false
	}
	return soft, true
}

// Apply sets the runtime's soft memory limit to Soft of the environment
// and the container's memory.max, and returns it (0: left alone).
func Apply(percent int, floor int64) int64 {
	b, _ := os.ReadFile(CgroupMemoryMax)
	soft, ok := Soft(os.Getenv("GOMEMLIMIT"), string(b), percent, floor)
	if !ok {
		return 0
	}
	debug.SetMemoryLimit(soft)
	return soft
}
