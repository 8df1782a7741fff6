// Package h2conn is the connection core that sidecar/h2client (the
// sidecar's HTTP/2 client) and sidecar/h2server (its HTTP/2 server)
// share: the frame codec's setup (golang.org/x/net's http2.Framer and
// hpack; header blocks merged by sidecar/internal/h2head into a frame
// the connection reuses, DATA frames reused), the batched writer with its write deadline and control-frame
// flood limit, flow control both ways, SETTINGS, WINDOW_UPDATE and PING
// handling, the keep-alive PING's and idle timeout's bookkeeping, the
// read loop (ReadFrames, which hands each frame to the side), the open
// streams by id (Streams) and a received body as its reader sees it
// (Body: pooled chunks, its end, its reader's Close). Each side keeps
// its own logic in its package: the client its streams' allocation,
// request writing and response reading; the server the handshake,
// handler dispatch and response writing; and each what it makes of the
// frames it reads (HEADERS, RST_STREAM, GOAWAY, DATA's stream checks),
// handing the others to Process.
//
// # Locking
//
// A Core is embedded in the side's connection, whose mutex (and the
// sync.Cond on it) it is given by Init: every method whose name ends in
// Locked runs with that mutex held, and the state of each side's
// streams is under it too. The side's streams embed a Stream, the part
// of their state the core reads and writes (windows, content-length,
// both ends' END_STREAM, reset).
//
// # Writing
//
// Every frame is written under the mutex into one buffer by whoever
// makes it (framed by Fr, whose writer is that buffer). One goroutine at
// a time writes the buffer to the socket (FlushLocked), without the
// mutex; what was queued meanwhile goes in its next write, so frames
// made together share writes. FlushSoonLocked hands the write to a
// goroutine of the Core's own instead (WaitFlushers waits for them),
// for a caller that must not wait for the peer to read. HEADERS and
// DATA wait while MaxPending bytes are queued (WaitRoomLocked); control
// frames (ControlLocked) do not, and a peer that lets more than
// Config.MaxControlBytes or Config.MaxControlFrames of them queue loses
// the connection (Side.FailLocked). Each write to the socket has a
// deadline, Config.WriteTimeout, set when the write starts and cleared
// when nothing more is pending: it bounds a pending write, never a
// stream's life, and none expires on an idle connection (crypto/tls
// writes from a Read too). SetWriteByLocked bounds the writes sooner (a
// closing connection's GOAWAY), FlushWithinLocked a write of its own (a
// keep-alive PING). A flush may name the stream it writes for
// (FlushForLocked): BreakWriteLocked, when the stream's request is
// cancelled, ends that stream's write in progress if it stalled, by a
// deadline 10 ms after the write's start (in the past for a write
// stalled longer); the connection, whose frame may be cut, then fails.
// A write that completed by then goes on, and that stream's flush hands
// what is still queued to a FlushSoonLocked goroutine, as does any
// flush for a stream that was reset: a cancelled request's caller and
// body writer never wait for a write of the others' frames.
//
// # Flow control
//
// The core keeps the connection's send window and the peer's
// SETTINGS_INITIAL_WINDOW_SIZE and SETTINGS_MAX_FRAME_SIZE
// (SettingsLocked, WindowUpdateLocked), frames DATA within the stream's
// and the connection's send windows (WriteDataLocked, waiting for them
// to open or returning what they do not take), takes received DATA from
// the receive windows (TakeDataLocked, StreamDataLocked: a FLOW_CONTROL
// error beyond them) and gives the bytes consumed back in WINDOW_UPDATEs
// once a quarter of a window is due (CreditLocked, Credit); DataLocked
// takes a DATA frame of an open stream into its Body.
//
// # Goroutines
//
// The core starts none but FlushSoonLocked's writers, at most one at a
// time, each ending once its write returned; the side waits for them
// (WaitFlushers) when its connection ended, after it failed the
// writes. The keep-alive timer is the side's: the core says when to
// PING (PingTickLocked) and when the connection has been idle long
// enough (IdleForLocked).
package h2conn
