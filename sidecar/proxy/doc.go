// Package proxy forwards one HTTP request to the endpoint the router and
// load balancer chose, and streams the response back: the part of the
// request path that the outbound and inbound listeners share.
//
// Forward turns the server's request into the upstream request in place
// (a shallow copy with a new URL; the header map is the server's, which
// the handler owns; Forward makes that copy and its URL in one
// allocation, and the outbound listener, which keeps its Prepared request
// on its stack, one such copy per try with TryOf and SendTry; the copy's
// context carries the endpoint only when the transport's dialers need it,
// transport.Mesh.NeedsEndpoint): hop-by-hop headers go (Connection and
// what it names, Keep-Alive, Proxy-*, TE except "trailers", Trailer,
// Transfer-Encoding, Upgrade), the Host is kept, nothing is added. The
// Transport (transport.Mesh in the sidecar; consumer-defined here so tests
// and the mTLS transport can stand in) sends it. The response headers
// lose their hop-by-hop headers and their values go into the client's
// response (the upstream's header map is not used once its body is
// closed: the transport recycles it); the body is copied through a pooled
// 32 KiB buffer and flushed after every read when its length is unknown
// (streaming, server-sent events); trailers follow the body. An upstream
// that fails mid-body aborts the client's response rather than end it
// cleanly.
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
