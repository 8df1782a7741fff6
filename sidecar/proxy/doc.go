// Package proxy forwards one HTTP request to the endpoint the router and
// load balancer chose, and streams the response back: the part of the
// request path that the outbound and inbound listeners share.
//
// Forward turns the server's request into the upstream request in place
// (a shallow copy with a new URL, a Hop; the header map is the server's,
// which the handler owns; Forward prepares it on its stack and copies it
// into the Hop with TryOf, as the outbound listener does once per try,
// sending with SendTry; the copy's context carries the endpoint only when
// the transport's dialers need it, transport.Mesh.NeedsEndpoint):
// hop-by-hop headers go (Connection and
// what it names, Keep-Alive, Proxy-*, TE except "trailers", Trailer,
// Transfer-Encoding, Upgrade), the Host is kept, nothing is added. The
// Transport (transport.Mesh in the sidecar; consumer-defined here so tests
// and the mTLS transport can stand in) sends it. The response headers
// lose their hop-by-hop headers and their values go into the client's
// response (the upstream's header map is not used once its body is
// closed: the transport recycles it); the body is copied through a pooled
// 32 KiB buffer and flushed after every read when its length is unknown
// (streaming, server-sent events), but the read that ended it (the
// handler's return sends those bytes with the end: a gRPC unary
// response whose trailers came with its message leaves in one write);
// trailers follow the body. An upstream
// that fails mid-body aborts the client's response rather than end it
// cleanly.
//
// Ownership: when the Transport says it keeps nothing of a try's request
// once it answered (Releases: transport.Mesh.ReleasesRequest, a request
// without a body on an HTTP/1.1 pool), the Hop and, once its body is
// closed, the upstream's response go back to their pools (Recycle), and
// Forward and ForwardToApp report the server's request released, so the
// handler may give it back to h1server (h1server.Recycler). Otherwise
// nothing is reused and the garbage collector takes them.
//
// Errors are answered by the sidecar itself with a one-line text/plain body
// that starts with "weft:": 502 when the upstream could not be reached (a
// transport.DialError) or failed before its response headers; nothing when
// the client has gone.
//
// Goroutines: Forward runs on the server's request goroutine and blocks
// until the response is copied; the transport's connection goroutines do
// the rest.
package proxy
