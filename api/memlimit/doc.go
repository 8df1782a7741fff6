// Package memlimit derives a Go soft memory limit (debug.SetMemoryLimit)
// from the container's cgroup v2 memory limit, so that the GC works harder
// near the limit instead of the kernel killing the process: one rule for
// every Weft binary that sets one (the sidecar, the control plane). The
// operator's GOMEMLIMIT always wins.
package memlimit
