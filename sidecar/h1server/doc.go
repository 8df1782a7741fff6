// Package h1server is the sidecar's HTTP/1.x server: the outbound (15001)
// and inbound (15006) listeners serve with it instead of net/http's
// server, whose per-request costs dominated the data path (issue 11): a
// background-read goroutine after each request body, a context, a
// response struct with a chunk writer and two bufio layers, a header
// clone at WriteHeader, per-request deadline resets.
//
// # Flow
//
// Serve accepts; each connection gets one goroutine (conn.serve) that
// loops read-request -> handler -> finish-response. ServeConn runs the
// same loop on the caller's goroutine, for a listener that has one per
// connection already (the inbound's TLS-sniffing listener). A TLS connection
// (already handshaken by the inbound's Listener, or handshaken here)
// whose ALPN is "h2", and a plaintext one that opens with the h2c
// preface (read into the buffer, then replayed), are served by HTTP2
// (a ConnServer: sidecar/h2server) on the connection's goroutine when it
// is set, else handed through an in-memory listener to Config, the
// net/http.Server the caller configured, which serves HTTP/2 exactly as
// before; so does
// Config.Handler and Config.ConnContext for HTTP/1.x here.
//
// Per connection: one pooled 4 KiB bufio.Reader and Writer, a 2 KiB hold
// buffer for responses of unknown length, a watch timer. Per request:
// the head is read whole from the reader and copied into one string that
// every parsed string (method, target, header keys and values) shares;
// the header map and one slice for all its values; a context.WithCancel;
// the response writer (exchange), one allocation that holds the
// *http.Request (a WithContext copy of a per-connection template), its
// body and, for plain origin- and absolute-form targets parsed here, its
// URL (other targets: url.ParseRequestURI). None of these is reused for another
// request unless the handler gives the request back (Recycler, below):
// what a handler keeps of its request (r, r.URL, r.Header, r.Context())
// stays as it was. The response header map (w.Header()) is
// the connection's: once the handler returned and the response was
// written, it is cleared and serves the next response on the connection
// (unless it grew beyond 32 fields). So a handler must not use that map
// after it returns, as it must not use w (net/http's rule); values it put
// in it are not touched. Body framing: Content-Length, chunked (with
// trailers), none; Expect: 100-continue sends 100 at the first body read
// unless the head went first. HTTP/1.0 and Connection: close close after
// the response. A head over MaxHeaderBytes is answered 431, a malformed
// one 400 (505 for another major version, 501 for a transfer coding
// other than chunked, 400 for Transfer-Encoding with Content-Length),
// and the connection closed.
//
// The response writer (exchange) implements http.ResponseWriter,
// http.Flusher, Hijack and EnableFullDuplex (both reached through
// http.NewResponseController). The head is written with the first body
// bytes: a known Content-Length goes out as it is, so a response that
// fits the buffer leaves in one write (one TLS record) when the handler
// returns; an unknown length is held up to 2 KiB and, if the handler
// returns within it, sent with a Content-Length, else chunked (HTTP/1.0:
// until close). Trailers: declared with the Trailer header or set with
// http.TrailerPrefix, sent after the last chunk. The server adds Date
// (formatted once a second); it does not sniff a Content-Type and does
// not sort header fields. A panicking handler closes the connection
// (logged unless http.ErrAbortHandler).
//
// # Giving a request back (Recycler)
//
// A Config.Handler that implements Recycler is called through
// ServeRecycle, whose result says whether the handler, and everything it
// handed the request to, is done with r, r.URL, r.Header (map and value
// slices) and w. When it is, and the request had no body (a body's reader
// lives in the exchange and a transport may still read it), the
// connection keeps the exchange (with the *http.Request and its URL), the
// header map and its values' slice, cleared, for its next request: three
// allocations and ~1 KB per request less. The head string and the
// context are new for every request, so strings taken from a request and
// its context stay valid whatever the handler answered. A handler that
// panics, hijacks or answers false keeps the request, as with ServeHTTP.
//
// # Client disconnect (watch.go)
//
// r.Context() is cancelled when the handler returns, and when the client
// closes the connection while the handler runs: a per-connection timer,
// reset per request, arms a one-byte background read once the handler
// runs longer than WatchDelay (5 ms) and the body was read; a read error
// cancels the context, a byte read (pipelining) goes back in front of
// the buffer. A fast request pays a timer Reset and Stop, no goroutine.
//
// # Goroutines and shutdown
//
// Serve's accept loop, one goroutine per connection (ended by the
// client, an error, the idle timeout, Shutdown or Close), a short-lived
// background read per slow request (waited for before the next request
// or a hijack), and Config's own Serve on the in-memory listener (ended
// by Shutdown/Close; not started when HTTP2 is set: an HTTP/2 connection
// then stays on its goroutine, tracked like the others, and HTTP2 owns
// its streams' goroutines). Shutdown refuses new connections, closes idle
// ones, lets active ones finish their response and close, and shuts
// Config (or HTTP2: GOAWAY) down; Close closes everything. A hijacked connection is the handler's.
package h1server
