// Package h1client is the sidecar's HTTP/1.1 upstream client: a pool of
// keep-alive connections per upstream address whose RoundTrip runs entirely
// on the caller's goroutine.
//
// net/http's Transport runs a reader and a writer goroutine per connection
// and hands every request and response between them and the caller over
// channels; on the sidecar's pooled hops (to the app, and between sidecars
// over mTLS with ALPN http/1.1) that machinery cost more CPU than the proxy
// itself (BENCHMARKS.md). Here a request is written and its response read
// by the goroutine that called RoundTrip, and the response body's reader
// hands the connection back to the pool when it reaches the end of the body.
//
// # One request
//
//  1. Client.RoundTrip takes the most recently used idle connection to
//     req.URL.Host (LIFO: the warmest connections stay in use, the others age
//     out after the idle timeout), or dials one with the Client's DialFunc.
//     A connection idle for more than a second is first checked with a
//     non-blocking peek (Linux), so one the server has closed meanwhile is
//     dropped before a request is written to it.
//  2. The request line, the headers and a body of known length up to 64 KiB
//     are written on the caller's goroutine, through the connection's
//     bufio.Writer: a request whose head and body fit in its 4 KiB buffer
//     goes out in one write (one TLS record). A body of unknown length
//     (ContentLength -1: chunked) or above 64 KiB is streamed by a goroutine
//     of that request while the caller reads the response, as net/http does,
//     so an upstream that answers before it has read the whole body, or
//     streams its answer while it reads, is served.
//  3. The response head is read and parsed here (parse.go; 1xx responses are
//     skipped, at most MaxResponseHeaderBytes per head) into one string, whose
//     slices are the status and the header values; the Response and its body
//     are one allocation, the header map and its values' slice two more.
//     Nothing of a response is reused for another, except, with
//     WithHeaderRecycling, its header map once the caller closed the body,
//     and the Response with its body once the caller gave it back
//     (Recycle). Framing follows
//     RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304;
//     Transfer-Encoding chunked (trailers go into Response.Trailer at the
//     end of the body, declared names present from the start, as net/http
//     does); Content-Length; otherwise the body ends when the server closes
//     the connection.
//  4. The body returns the connection to the pool when it reaches its end,
//     unless either side asked to close it (Connection: close, HTTP/1.0
//     without keep-alive, a close-delimited body). Closing a body before its
//     end keeps the connection only if the rest is already buffered;
//     otherwise the connection is closed.
//
// # Cancellation, failures and retries
//
// While a request is in flight (until its body ends or is closed), a
// context.AfterFunc on the request's context sets a past deadline on the
// connection, which aborts a blocked read or write; the error is then
// context.Cause of the request's context, as with net/http, and the
// connection is discarded. The AfterFunc is registered only once the
// request has been in flight for WithCancelWatchDelay (default 5 ms; a
// per-connection timer, reset per request, registers it): the proxy's
// contexts are new for each request, and registering cost five
// allocations a request (watch.go). A context that ends within the delay
// aborts the request at the delay. A Close of the body from another goroutine
// while a Read blocks closes the connection.
//
// A dial error is returned as the DialFunc returned it (the sidecar's
// transport returns a *transport.DialError). A request that fails on a
// reused connection before any byte of a response arrived (EOF, reset,
// broken pipe: the server closed the idle connection) is sent once more on
// a new connection when it is idempotent (net/http's rule: GET, HEAD,
// OPTIONS, TRACE, or an Idempotency-Key header) and its body is empty or
// can be had again with GetBody; other failures are returned (the
// outbound's retry policy decides what happens next).
//
// # Goroutines
//
// None per connection. Per request only the body writer of step 2, which
// ends when the body is written or the connection fails (the request's
// connection is closed when it is abandoned). Each connection has a watch
// timer and each upstream address's pool one timer (time.AfterFunc) that
// closes the connections idle for longer than the idle timeout, or, with
// WithSpareIdleTimeout, those other than the most recently used one idle
// for longer than that shorter timeout (a burst's extra connections go
// once the load that follows no longer uses them);
// CloseIdleConnections stops it. A Client is safe for concurrent use.
package h1client
