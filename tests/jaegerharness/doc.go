// Package jaegerharness starts a real Jaeger v2 (built and cached by
// hack/jaeger/build.sh, memory storage) on a random loopback address for
// a test, and reads traces back through its query HTTP API.
//
// Start builds the binary if needed (minutes when cold, instant when
// cached), writes the same configuration as hack/jaeger/config.sh, starts
// the process in its own process group, waits for /api/services with a
// deadline, and registers a cleanup that stops it (SIGTERM, then SIGKILL).
// The test owns the process; nothing here runs a goroutine past Stop.
package jaegerharness
