// Package h2server is the sidecar's HTTP/2 server: h1server hands it the
// outbound's and inbound's HTTP/2 connections (TLS with ALPN "h2", and
// plaintext ones that open with the h2c prior-knowledge preface) instead
// of net/http's HTTP/2 server, whose per-frame costs dominated the
// sidecars' HTTP/2 and gRPC profiles (issue 11): a goroutine per stream
// plus hand-offs of every frame between the read loop, the serve loop and
// the handler, and a write and flush per frame on a goroutine of its own.
// The frame codec (http2.Framer, hpack) is golang.org/x/net's; the
// connection core it shares with sidecar/h2client (write batching and
// deadlines, flow control, SETTINGS, WINDOW_UPDATE and PING, the
// keep-alive's bookkeeping, the read loop, request bodies' pooled
// chunks) is sidecar/internal/h2conn's; the handshake, what the frames
// read mean to a server, streams, handlers and responses are here.
//
// # Flow
//
// ServeConn runs on the connection's goroutine (h1server's) as its read
// loop: the preface, SETTINGS both ways (MAX_CONCURRENT_STREAMS,
// INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE) and a WINDOW_UPDATE that opens
// the connection window, then one frame at a time. HEADERS (with their
// CONTINUATION, merged and size-checked by the Framer, which stops at
// twice the header-list limit: CVE-2024-27316) make a stream and an
// *http.Request (a request over the limit is answered 431; a malformed
// one is reset with PROTOCOL_ERROR, after a 400 that says why when a
// regular field makes it so, as net/http answers: a connection-specific
// field, TE other than trailers, a Content-Length that is not one or
// comes without a body); the handler runs on a goroutine of its own,
// which then serves queued streams. DATA goes into the stream's body (requestBody: pooled 16 KiB chunks, each
// given back once read, so it holds the unread bytes the connection
// window bounds), which the handler reads; the bytes it consumed (or
// dropped) go back to the peer's windows in WINDOW_UPDATEs once a
// quarter of a window is due. Once END_STREAM came, ReadRest gives all
// the body's bytes at once (retry.Tee takes a gRPC unary call's message
// so, without its pump goroutine). Trailers end the body and fill
// Request.Trailer at the Read that returns io.EOF (or ReadRest), on the
// reader's goroutine, as net/http's: the handler may look at the names
// declared while the trailers arrive. RST_STREAM cancels the request's context and fails its
// body (what the handler did not read goes back to the connection window
// at once, a queued stream's too) and writes. PING is answered; SETTINGS
// is applied (initial window, frame size, header table) and acknowledged.
//
// # Writing
//
// Every frame is written under the connection's mutex into one buffer
// (h2conn.Core's) by whoever makes it: the read loop (ACKs, WINDOW_UPDATE,
// RST_STREAM), handlers (HEADERS, DATA, trailers). One goroutine at a
// time writes the buffer to the socket (FlushLocked), without the mutex;
// what was added while it wrote goes in its next write. The read loop
// never writes to the socket: when it has nothing more buffered to read
// it hands what it queued to a writer goroutine (FlushSoonLocked), or to
// the write in progress, and reads on, so a peer that sends PINGs,
// SETTINGS or frames that reset streams and reads nothing cannot hold it
// in a write. A handler flushes when it returns, and when its buffered
// body exceeds a frame. Flush (the proxy
// flushes after each chunk of a streamed response but the one that
// ended it: a gRPC unary response whose trailers came with its message
// is not flushed, it leaves as the handler returns) starts a goroutine
// that writes, unless a write is in progress or due: on a single P it
// runs when the handler blocks (the next upstream read), so the trailers
// a handler writes right after a gRPC message join it. So a response
// leaves in one write (HEADERS, DATA, trailers), and the responses of
// several streams completing together share one.
// HEADERS and DATA wait while 64 KiB are queued; control frames do not
// wait, and a peer that lets more than 10000 of them queue (net/http's
// maxQueuedControlFrames: ping, settings and reset floods, CVE-2019-9512,
// -9515, -9514) loses the connection. Each write to the socket has a
// deadline, WriteTimeout (default 30 s; HTTP2Config.WriteByteTimeout in
// FromConfig): a peer that does not take a batch within it, because it
// reads nothing or too slowly, loses the connection. The deadline is set
// when a write starts and cleared when nothing more is pending, so it
// bounds a pending write, never a stream's life (an idle gRPC stream or
// tunnel has no write pending), and none expires on an idle connection
// (crypto/tls writes from a Read too, e.g. the answer to a KeyUpdate).
//
// The response writer buffers up to 16 KiB of body; the head goes with
// the first DATA (or alone on Flush). A handler that returns with the
// whole body buffered and no Content-Length gets one. Trailers: declared
// with the Trailer header or set with http.TrailerPrefix. DATA is sent
// within the stream's and the connection's send windows, the handler
// waiting for WINDOW_UPDATE. A request with Expect: 100-continue gets
// 100 at the first body read. A handler that returns before the client
// ended its request gets the stream reset with NO_ERROR after the
// response; a panicking one with INTERNAL_ERROR.
//
// # Limits
//
// MaxConcurrentStreams (default 250) bounds the open streams (more are
// refused with REFUSED_STREAM) and the handlers running: a stream the
// client reset still counts until its handler returned, so rapid resets
// (CVE-2023-44487) queue new streams, and a queue beyond four times the
// limit ends the connection with ENHANCE_YOUR_CALM. Flow-control windows
// are enforced both ways; a DATA frame beyond them is a FLOW_CONTROL_ERROR.
//
// # Goroutines and shutdown
//
// Per connection: the read loop (the caller's), handler goroutines (at
// most MaxConcurrentStreams), at most one writer goroutine at a time
// (Flush's and the read loop's; waited for when the connection ends),
// and a timer for keep-alive PINGs (SendPingTimeout, PingTimeout) and
// IdleTimeout; the timer's writes have a shorter deadline (the PING's
// PingTimeout, an idle GOAWAY's a second, as a connection error's
// GOAWAY), so a peer that reads nothing cannot hold it in a write past
// the PING timeout or the idle close. When the read loop ends it cancels every stream and waits for the handlers to return.
// Shutdown sends GOAWAY (last stream id seen) on every connection, each
// from a goroutine of its own that ends once it was written or the
// connection closed (a peer that reads nothing holds up no other
// connection, nor Shutdown's return when its context ends): each closes
// once its streams are done; new streams are refused. Close closes the
// connections.
package h2server
