// Package local is Weft's end-to-end suite on loopback: the real
// weft-control-plane, weft-sidecar and shop binaries, built once per test
// run (or taken from $WEFT_BIN_DIR), run as processes by
// control-plane/launch exactly as `weftctl up` runs them.
//
// Each test starts its own mesh on a random 127.a.b.0/24 (control plane on
// .1, workloads on .10 and up), so parallel runs do not collide, and sends
// its requests as an app would: plain HTTP through the "client" workload's
// sidecar used as an HTTP proxy. Every wait is a deadline loop, never a
// fixed sleep.
package local
