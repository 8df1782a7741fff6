// Package stackgrow grows the calling goroutine's stack in one step.
//
// net/http's HTTP/2 server runs each stream's handler on a new goroutine,
// which starts with a small stack (the runtime's average stack use) and,
// on the sidecar's request path (routing, telemetry, the transport, TLS),
// outgrows it several times: each time the runtime allocates a stack
// twice the size and copies the frames in use, adjusting every pointer
// into the stack. Those copies were 5-13 % of a sidecar's CPU under
// HTTP/2 and gRPC load (BENCHMARKS.md, "HTTP/2 and gRPC through the
// pair"). Grow, called where the stack is still shallow, makes the
// runtime grow it once, to the size the path needs, while there is little
// to copy: CockroachDB's util/growstack does the same for its storage
// paths.
//
// A goroutine that serves many requests (the HTTP/1.x server's one per
// connection) keeps its grown stack and needs none of this.
package stackgrow
