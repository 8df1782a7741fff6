// Package registry defines where the mesh's state comes from.
//
// A Source watches one registry (a YAML file now, the Kubernetes API later)
// and calls its push function with a complete, validated model.State: first
// once the registry has been read and found good, then after every change
// that yields a new good state. A change that does not validate is reported
// (logged, and through the source's error hook) and not pushed: the last good
// state stays in force.
//
// Goroutines: Run owns every goroutine of the source and returns when its
// context is done (with nil) or on a fatal error. It calls push from its own
// goroutine, one call at a time, in order; push must not block for long (the
// xds package's Update only stores the state and wakes its debouncer).
//
// The states are whole snapshots, not deltas, so a consumer that misses one
// (because it coalesces) loses nothing: the next one says everything.
package registry
