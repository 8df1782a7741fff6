// Package h2client is the sidecar's HTTP/2 client, for the hops that
// need HTTP/2: the tunnel's multiplexed connection to a peer sidecar
// (h2c, or TLS with ALPN h2) and the h2c hop to a gRPC app (package
// transport). It replaces net/http's HTTP/2 transport there, whose
// per-request costs dominated the sidecars' gRPC profiles (issue 11): a
// goroutine per request plus hand-offs of every request and frame
// between it, the connection's writer and its read loop. It is the
// client side of sidecar/h2server's design: the frame codec
// (http2.Framer, hpack) is golang.org/x/net's; the connection core both
// share (write batching and deadlines, flow control, SETTINGS,
// WINDOW_UPDATE and PING, the keep-alive's bookkeeping, the read loop,
// received bodies' pooled chunks) is sidecar/internal/h2conn's; the
// pool, what the frames read mean to a client, streams, requests and
// responses are here.
//
// # Connections
//
// One connection per peer address carries every request to it; a second
// one is dialled only while every stream the first allows
// (SETTINGS_MAX_CONCURRENT_STREAMS; 100 until the peer's SETTINGS came)
// is taken. One dial at a time per peer: requests that find no room wait
// for it (or for their context). A new connection's preface, SETTINGS
// (push off, the stream window, the header list limit) and the
// WINDOW_UPDATE that opens its connection window are queued, not
// written: they leave in one write with the first request's HEADERS.
//
// # A request
//
// RoundTrip runs on the caller's goroutine: it reserves a stream on a
// connection, encodes the head (checked first against the peer's
// SETTINGS_MAX_HEADER_LIST_SIZE, its trailer field included, so a
// refused head leaves the encoder's table as the peer knows it; the
// request's trailers are checked so too before they are sent) and
// writes it. A request without a body
// ends its stream on HEADERS. A body that can give all of itself at once
// (ReadRest: sidecar/h2server's request body once the client ended it,
// as a gRPC unary call's) is framed on the caller's goroutine too, so
// HEADERS, DATA and END_STREAM leave in one write, as far as the send
// windows take it: what they do not take yet goes by a body writer, so
// the caller never waits for the windows. Any other body (a
// stream: gRPC client or bidirectional streaming, CONNECT tunnels,
// uploads) is sent as it is read by a goroutine of the stream's own,
// within the stream's and the connection's send windows, then its
// trailers (Request.Trailer) or END_STREAM; the body is closed once sent
// or when the stream ends (which ends a pending Read). A body longer or
// shorter than the request's ContentLength (when above 0; 0 is unknown)
// fails the request, as x/net's: its stream is reset (CANCEL), and a
// body received whole is not sent at all. The caller then
// waits for the response head; the body's DATA waits in pooled chunks
// until read, and the bytes read (or dropped by Close) go back to the
// peer in WINDOW_UPDATEs once a quarter of a window is due (backpressure:
// a caller that does not read stops the peer at the stream window).
// Trailers fill Response.Trailer before the body's io.EOF.
// A response's 1xx heads are dropped; together they count against the
// response header limit (WithMaxHeaderBytes), beyond which the stream is
// reset, so a peer cannot send them forever.
// Cancelling the request's context resets the stream (RST_STREAM
// CANCEL): a caller waiting for the head gets the context's error, and
// so does the body's next Read unless the response was complete (a
// complete body stays readable to its end, as x/net's); a request body still being sent after
// the response ended stops (its writer watches the context until it
// returns). Closing the body before its end resets the stream too.
//
// # Writing
//
// Every frame is written under the connection's mutex into one buffer by
// whoever makes it: callers (HEADERS, whole bodies), body writers (DATA,
// trailers), the read loop (ACKs, WINDOW_UPDATE, RST_STREAM). One
// goroutine at a time writes the buffer to the socket, without the
// mutex; what was queued meanwhile goes in its next write, so requests
// made together share writes. HEADERS and DATA wait while 64 KiB are
// queued; control frames do not, and a peer that lets 1 MiB of them
// queue loses the connection.
// Each write to the socket has a deadline, WithWriteTimeout (default
// 30 s, as sidecar/h2server's): a peer that does not take a write within
// it (it reads nothing, or too slowly) fails the connection, so no
// writer (a caller, a body's Read returning window, the read loop) waits
// on it for longer. A request whose context ends while its own write
// (its caller's, its body writer's, its body's Read or Close) is stalled
// does not wait for that: the write's deadline moves to 10 ms after its
// start (a write that completes by then goes on), and the connection,
// whose frame may be cut, fails as on a write timeout (the other streams
// fail; those whose HEADERS never left with ErrNotProcessed). The deadline is set when a write starts and
// cleared when nothing more is pending: it bounds a pending write, never
// a stream's life, and none expires on an idle connection (crypto/tls
// writes from a Read too).
//
// # Errors and retries
//
// A connection error (a read or write failure, a protocol error of the
// peer, which gets GOAWAY) fails every stream on it; a stream whose
// HEADERS had not been handed to a write yet fails with an error
// wrapping ErrNotProcessed. GOAWAY stops new
// streams on the connection (it closes once its streams are done); the
// streams above its last stream id fail with an error wrapping
// ErrNotProcessed, as does a stream refused with REFUSED_STREAM: the
// peer never processed them, so they may be sent again elsewhere
// (filter/retry classifies them RefusedStream). A request without a body
// that was not processed goes again on another connection at once (up
// to twice), as net/http's does. RST_STREAM from the peer fails its
// stream: the head's wait, or the body's reads when the response was not
// complete.
//
// # Goroutines
//
// Per connection: its read loop, a goroutine with a timer for
// keep-alive PINGs (WithPing: a PING after that long without a frame
// read, the connection failed when its ACK is late) and WithIdleTimeout
// (only with either), and a body writer per request with a streamed body
// while it sends. Nothing else runs per request: RoundTrip and the
// response body's reads are the caller's. Close fails every connection
// and waits for the read loops, timer goroutines and body writers to
// return: none runs once it returned.
package h2client
