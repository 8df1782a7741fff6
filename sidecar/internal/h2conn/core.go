package h2conn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/sidecar/internal/h2head"
)

const (
	// MaxPending is how many bytes of HEADERS and DATA may wait for the
	// writer before a writer waits for room.
	MaxPending = 64 << 10
	// maxKeepBuf: a write buffer that grew beyond it is not kept.
	maxKeepBuf = 128 << 10
	// InitialWindow is HTTP/2's initial flow-control window.
	InitialWindow = 65535
	// MaxWindow is the largest flow-control window.
	MaxWindow = 1<<31 - 1
	// stallAfter: a write in progress that long is stalled (the socket's
	// buffer is full: the peer reads slower than it is written to, or
	// not at all); BreakWriteLocked ends it then, not sooner, so that a
	// write that was only about to complete does not fail its
	// connection.
	stallAfter = 10 * time.Millisecond
	// MinFrameSize is HTTP/2's default (and smallest) frame size: the
	// frame size both sides read (they advertise no other), and the
	// peer's until its SETTINGS.
	MinFrameSize = 16 << 10
)

// ErrFlood is wrapped by the error of a connection whose peer let
// control frames pile up without reading them.
var ErrFlood = errors.New("peer does not read control frames")

// Side is what the core needs of the connection it is embedded in.
type Side interface {
	// FailLocked ends the connection after a write failed or the peer
	// let control frames pile up (ErrFlood).
	FailLocked(err error)
	// WriteStartLocked is called as a write of what is queued starts.
	WriteStartLocked()
	// StreamLocked is open stream id, nil if none; opened says whether
	// id was ever opened (a frame on an idle stream is a protocol error).
	StreamLocked(id uint32) (st *Stream, opened bool)
	// EachStreamLocked calls f for every open stream until f fails.
	EachStreamLocked(f func(*Stream) error) error
	// ClosedLocked is called once st ended both ways (RemoteDoneLocked,
	// LocalDoneLocked): the side forgets it.
	ClosedLocked(st *Stream)
}

// Config is what differs between the two sides' connections.
type Config struct {
	// Name prefixes the core's errors ("h2client").
	Name string
	// WriteTimeout bounds each write to the socket (0 or negative: none).
	WriteTimeout time.Duration
	// MaxControlBytes and MaxControlFrames bound the control frames
	// queued (0: no bound): beyond either the connection fails.
	MaxControlBytes, MaxControlFrames int
	// MaxHeaderListSize bounds a received header list (the Framer's).
	MaxHeaderListSize uint32
	// StreamWindow and ConnWindow are the receive windows advertised.
	StreamWindow, ConnWindow int32
	// ErrStreamReset is the error of a write on a stream that was reset.
	ErrStreamReset error
}

// Stream is the part of a stream's state that the core reads and
// writes (under the connection's mutex); the sides' streams embed it.
type Stream struct {
	ID      uint32
	SendWin int64 // send window
	Inflow  int64 // receive window left, as the peer sees it
	Unacked int64 // bytes consumed and not yet returned
	DeclLen int64 // the peer's content-length, -1 if none
	GotLen  int64 // DATA bytes received
	// RemoteDone: END_STREAM received, or reset; LocalDone: END_STREAM
	// sent, or reset.
	RemoteDone, LocalDone, Reset bool
}

// HeaderBuf collects the hpack encoder's output: B is the block encoded
// since it was last emptied.
type HeaderBuf struct{ B []byte }

func (h *HeaderBuf) Write(p []byte) (int, error) {
	h.B = append(h.B, p...)
	return len(p), nil
}

// frameSink is the Framer's writer: frames go into the write buffer
// (under the mutex).
type frameSink struct{ c *Core }

func (w frameSink) Write(p []byte) (int, error) {
	w.c.buf = append(w.c.buf, p...)
	return len(p), nil
}

var _ io.Writer = frameSink{}

// Core is the state of a connection that both sides share. Its fields
// and the methods named ...Locked are under the side's mutex.
type Core struct {
	nc   net.Conn
	mu   *sync.Mutex
	cond *sync.Cond
	side Side
	cfg  Config

	// Fr frames what is written into the write buffer and reads frames
	// from the connection's reader.
	Fr *http2.Framer
	// hr reads Fr's frames, each header block merged into a frame it
	// reuses.
	hr   *h2head.Reader
	Henc *hpack.Encoder
	Hbuf HeaderBuf
	// frames counts the frames read (ReadFrame), for the keep-alive PING.
	frames atomic.Uint64

	// Write side.
	buf, spare []byte
	ctrlBytes  int // of control frames in buf
	ctrlFrames int // control frames in buf
	flushing   bool
	flushDue   bool           // a FlushSoonLocked goroutine is due
	flushers   sync.WaitGroup // FlushSoonLocked's goroutines
	flushSoon  func()         // c.flushSoonRun, made once
	err        error          // why writing ended, once it did
	// deadline is the socket's write deadline as last set; writeBy, when
	// set, bounds the writes sooner (a closing connection's GOAWAY, the
	// timer's PING).
	deadline, writeBy time.Time
	// writingFor is the stream the write in progress is for (nil: none
	// said); brokeFor, the stream whose write BreakWriteLocked ended;
	// writeStart, when the write in progress started.
	writingFor, brokeFor *Stream
	writeStart           time.Time

	// Flow control and the peer's settings.
	PeerMaxFrame uint32
	PeerWindow   int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	SendWin      int64 // connection send window
	Inflow       int64 // connection receive window left, as the peer sees it
	Unacked      int64 // connection bytes consumed and not yet returned

	// Keep-alive and idle.
	lastFrames uint64
	// lastFrameAt is when the timer saw the frame count change last.
	lastFrameAt time.Time
	pingOut     bool
	pingAt      time.Time
	// IdleSince is when the connection last had no stream (zero: it has
	// one).
	IdleSince time.Time
}

// Init sets c up for nc, read through r: the Framer (reading frames of
// MinFrameSize at most, header lists of cfg.MaxHeaderListSize), the
// hpack encoder, the windows before the peer's SETTINGS. mu is the
// side's mutex, cond a sync.Cond on it, side the connection.
func (c *Core) Init(nc net.Conn, r io.Reader, mu *sync.Mutex, cond *sync.Cond, side Side, cfg Config) {
	c.nc, c.mu, c.cond, c.side, c.cfg = nc, mu, cond, side, cfg
	c.flushSoon = c.flushSoonRun
	c.PeerMaxFrame = MinFrameSize
	c.PeerWindow = InitialWindow
	c.SendWin = InitialWindow
	c.Inflow = InitialWindow
	c.Fr = http2.NewFramer(frameSink{c}, r)
	c.Fr.MaxHeaderListSize = cfg.MaxHeaderListSize
	c.hr = h2head.NewReader(c.Fr, hpack.NewDecoder(4096, nil))
	c.Fr.SetMaxReadFrameSize(MinFrameSize)
	c.Henc = hpack.NewEncoder(&c.Hbuf)
}

// ReadFrame reads the next frame (the read loop's): a HEADERS frame as a
// *http2.MetaHeadersFrame with its CONTINUATION merged (h2head), valid,
// as every frame it returns, until the next ReadFrame.
func (c *Core) ReadFrame() (http2.Frame, error) {
	f, err := c.hr.ReadFrame()
	if err == nil {
		c.frames.Add(1)
	}
	return f, err
}

// QueueLocked adds p, bytes that are not a frame (the client preface),
// to the write buffer.
func (c *Core) QueueLocked(p string) { c.buf = append(c.buf, p...) }

// Buffered is how many bytes wait for a write.
func (c *Core) Buffered() int { return len(c.buf) }

// Flushing reports whether a write is in progress.
func (c *Core) Flushing() bool { return c.flushing }

// ErrLocked is why writing ended, nil while it goes on.
func (c *Core) ErrLocked() error { return c.err }

// StopLocked ends writing with err unless it ended already; the
// connection itself is the side's to close.
func (c *Core) StopLocked(err error) {
	if c.err == nil {
		c.err = err
	}
}

// ControlLocked queues a control frame that write makes; they never
// wait for room, but a peer that lets them pile up loses the
// connection. Only control frames count: HEADERS and DATA wait for
// room, though one DATA frame may be as large as the peer's
// SETTINGS_MAX_FRAME_SIZE.
func (c *Core) ControlLocked(write func() error) error {
	if c.err != nil {
		return c.err
	}
	if c.cfg.MaxControlBytes > 0 && c.ctrlBytes > c.cfg.MaxControlBytes ||
		c.cfg.MaxControlFrames > 0 && c.ctrlFrames >= c.cfg.MaxControlFrames {
		err := fmt.Errorf("%s: %w", c.cfg.Name, ErrFlood)
		c.side.FailLocked(err)
		return err
	}
	n := len(c.buf)
	err := write()
	c.ctrlFrames++
	c.ctrlBytes += len(c.buf) - n
	return err
}

// WaitRoomLocked waits until the write buffer has room for a HEADERS or
// DATA frame of st (nil: a stream not opened yet); Config.ErrStreamReset
// once st was reset, which ends the wait at once.
func (c *Core) WaitRoomLocked(st *Stream) error {
	for len(c.buf) >= MaxPending && c.err == nil {
		if st != nil && st.Reset {
			return c.cfg.ErrStreamReset
		}
		if !c.flushing {
			c.FlushLocked()
			continue
		}
		c.cond.Wait()
	}
	return c.err
}

// FlushLocked writes the buffer unless another goroutine is writing (it
// writes what was added meanwhile when its write returns). The mutex is
// released during the write, which must complete within the write
// timeout (or writeBy): a peer that does not take it fails the
// connection.
func (c *Core) FlushLocked() { c.FlushForLocked(nil) }

// FlushForLocked is FlushLocked for st's caller (or body writer):
// BreakWriteLocked(st) ends its write at once. A flush for st after
// such a break, or once st was reset, hands what is queued to a
// FlushSoonLocked goroutine.
func (c *Core) FlushForLocked(st *Stream) {
	wrote := false
	for len(c.buf) > 0 && !c.flushing && c.err == nil {
		if st != nil && (c.brokeFor == st || st.Reset) {
			// Its write was broken but had gone through, or st was
			// reset (its request cancelled): st's caller or body
			// writer does not write (and wait for a peer that may not
			// read) for the others.
			if c.brokeFor == st {
				c.brokeFor = nil
			}
			c.FlushSoonLocked()
			break
		}
		wrote = true
		c.flushing = true
		c.writingFor = st
		b := c.buf
		c.buf, c.spare = c.spare[:0], nil
		c.ctrlBytes, c.ctrlFrames = 0, 0
		c.side.WriteStartLocked()
		// Set under the mutex: SetWriteByLocked may shorten it meanwhile.
		c.setDeadlineLocked(c.writeDeadlineLocked())
		c.mu.Unlock()
		_, err := c.nc.Write(b)
		c.mu.Lock()
		c.flushing = false
		c.writingFor = nil
		if cap(b) <= maxKeepBuf {
			c.spare = b[:0]
		}
		if err != nil {
			c.side.FailLocked(fmt.Errorf("%s: write: %w", c.cfg.Name, err))
		}
		c.cond.Broadcast()
	}
	if wrote && c.brokeFor == st {
		// Only the writer forgets the break: a flush for st that found
		// st's broken write in progress (the caller's, while its body
		// writer writes) leaves it to that writer's loop above.
		c.brokeFor = nil
	}
	if wrote && c.err == nil {
		// Nothing pending: no deadline left to expire while the
		// connection is idle (crypto/tls writes from a Read too: the
		// answer to a peer's KeyUpdate, which an expired deadline
		// fails, and the connection with it at its next write).
		c.setDeadlineLocked(c.writeBy)
	}
}

// BreakWriteLocked ends the write in progress if it is a flush for st
// (FlushForLocked) that has stalled: st's request was cancelled and its
// caller must not wait for the peer to read. The write's deadline moves
// to stallAfter after its start (in the past for a write stalled that
// long already, so it ends at once); a write that completes by then
// goes on as before. One that does not has its error fail the
// connection (a frame may be cut), as a write timeout does. It returns
// whether it moved the deadline.
func (c *Core) BreakWriteLocked(st *Stream) bool {
	if st == nil || !c.flushing || c.writingFor != st {
		return false
	}
	dl := c.writeStart.Add(stallAfter)
	if !c.deadline.IsZero() && !dl.Before(c.deadline) {
		return false
	}
	c.brokeFor = st
	c.deadline = dl
	_ = c.nc.SetWriteDeadline(dl)
	return true
}

// writeDeadlineLocked is the deadline of a write starting now: the
// write timeout (a pending write, not a stream's life: an idle stream
// has no write pending), or writeBy when the connection ends sooner.
func (c *Core) writeDeadlineLocked() time.Time {
	now := time.Now()
	c.writeStart = now
	var dl time.Time
	if d := c.cfg.WriteTimeout; d > 0 {
		dl = now.Add(d)
	}
	if !c.writeBy.IsZero() && (dl.IsZero() || c.writeBy.Before(dl)) {
		dl = c.writeBy
	}
	return dl
}

// setDeadlineLocked sets the socket's write deadline (it applies to a
// write in progress too).
func (c *Core) setDeadlineLocked(dl time.Time) {
	if !dl.Equal(c.deadline) {
		c.deadline = dl
		_ = c.nc.SetWriteDeadline(dl)
	}
}

// SetWriteByLocked bounds the connection's writes, the one in progress
// included, by t (zero: the write timeout alone again).
func (c *Core) SetWriteByLocked(t time.Time) {
	c.writeBy = t
	if t.IsZero() {
		return // the next write sets its own deadline
	}
	c.setDeadlineLocked(t)
}

// FlushWithinLocked writes the buffer within d, unless a write is in
// progress (that one takes it): a peer that does not take it in time
// fails the connection instead of holding the caller (the keep-alive
// timer) in the write.
func (c *Core) FlushWithinLocked(d time.Duration) {
	if c.flushing || len(c.buf) == 0 || c.err != nil {
		return
	}
	prev, by := c.writeBy, time.Now().Add(d)
	c.writeBy = by
	c.FlushLocked()
	if c.writeBy.Equal(by) { // not shortened meanwhile (a closing connection)
		c.writeBy = prev
		if c.err == nil {
			c.setDeadlineLocked(prev)
		}
	}
}

// FlushSoonLocked has a goroutine of its own write the buffer, unless a
// write is in progress or due (that one takes what is queued): the
// caller goes on, and what it queues before the goroutine runs (on a
// single P: until the caller blocks) shares the write.
func (c *Core) FlushSoonLocked() {
	if c.flushing || c.flushDue || len(c.buf) == 0 || c.err != nil {
		return
	}
	c.flushDue = true
	c.flushers.Add(1)
	go c.flushSoon() // a func value without arguments: no allocation
}

// flushSoonRun is FlushSoonLocked's goroutine (c.flushSoon, the method
// value made once in Init).
func (c *Core) flushSoonRun() {
	defer c.flushers.Done()
	c.mu.Lock()
	c.flushDue = false
	c.FlushLocked()
	c.mu.Unlock()
}

// WaitFlushers waits for FlushSoonLocked's goroutines (without the
// mutex), once writing ended (StopLocked): none starts after.
func (c *Core) WaitFlushers() { c.flushers.Wait() }

// DrainLocked returns once everything queued was written (or writing
// failed), whoever writes it.
func (c *Core) DrainLocked() {
	for {
		c.FlushLocked()
		// A write that failed (here or in the flusher waited for) ends
		// it: nothing more will be written.
		if c.err != nil || !c.flushing && len(c.buf) == 0 {
			return
		}
		c.cond.Wait()
	}
}

// WriteBlockLocked frames the encoded block in Hbuf as HEADERS and
// CONTINUATION frames of stream id.
func (c *Core) WriteBlockLocked(id uint32, end bool) error {
	block := c.Hbuf.B
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(c.PeerMaxFrame))
		frag, rest := block[:n], block[n:]
		var err error
		if first {
			err = c.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(rest) == 0})
		} else {
			err = c.Fr.WriteContinuation(id, len(rest) == 0, frag)
		}
		if err != nil {
			return err
		}
		block, first = rest, false
	}
	return nil
}

// WriteDataLocked frames p as DATA of st within the stream's and the
// connection's send windows, waiting for them to open; with wait false
// it returns what they do not take now instead (rest). end: END_STREAM
// with the last byte (LocalDoneLocked).
func (c *Core) WriteDataLocked(st *Stream, p []byte, end, wait bool) (rest []byte, err error) {
	for {
		if err := c.WaitRoomLocked(st); err != nil {
			return p, err
		}
		if st.Reset {
			return p, c.cfg.ErrStreamReset
		}
		if len(p) == 0 {
			if end {
				if err := c.Fr.WriteData(st.ID, true, nil); err != nil {
					return p, err
				}
				c.LocalDoneLocked(st)
			}
			return nil, nil
		}
		n := min(int64(len(p)), int64(c.PeerMaxFrame), st.SendWin, c.SendWin)
		if n <= 0 {
			if !wait {
				return p, nil
			}
			if len(c.buf) > 0 && !c.flushing {
				c.FlushLocked()
				continue
			}
			c.cond.Wait()
			continue
		}
		last := end && n == int64(len(p))
		if err := c.Fr.WriteData(st.ID, last, p[:n]); err != nil {
			return p, err
		}
		st.SendWin -= n
		c.SendWin -= n
		p = p[n:]
		if last {
			c.LocalDoneLocked(st)
			return nil, nil
		}
	}
}

// RemoteDoneLocked: the peer ended st (END_STREAM).
func (c *Core) RemoteDoneLocked(st *Stream) {
	st.RemoteDone = true
	if st.LocalDone {
		c.side.ClosedLocked(st)
	}
}

// LocalDoneLocked: st was ended (END_STREAM sent).
func (c *Core) LocalDoneLocked(st *Stream) {
	st.LocalDone = true
	if st.RemoteDone {
		c.side.ClosedLocked(st)
	}
}

// FrameHandler is what ReadFrames hands the frames it reads to: the
// side's connection.
type FrameHandler interface {
	// HandleFrame handles a frame read (the side's frames, the others
	// through Process); a StreamError fails the stream only.
	HandleFrame(f http2.Frame) error
	// StreamErrorLocked resets the stream of a stream error.
	StreamErrorLocked(se http2.StreamError)
	// FrameDone follows each frame; drained says nothing more is
	// buffered to read (the side hands what it queued to a write).
	FrameDone(drained bool)
}

// GoAwayCode is the GOAWAY error code for the read loop's error err: a
// ConnectionError's, FRAME_SIZE_ERROR for a frame too large; false for
// any other (the connection failed or the peer closed it).
func GoAwayCode(err error) (http2.ErrCode, bool) {
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		return http2.ErrCode(ce), true
	case errors.Is(err, http2.ErrFrameTooLarge):
		return http2.ErrCodeFrameSize, true
	}
	return 0, false
}

// ReadFrames is the read loop: it reads frames from br (the reader
// Init was given) and hands them to h until one fails the connection,
// whose error it returns.
func (c *Core) ReadFrames(br *bufio.Reader, h FrameHandler) error {
	for {
		f, err := c.ReadFrame()
		if err == nil {
			err = h.HandleFrame(f)
		}
		if err != nil {
			var se http2.StreamError
			if !errors.As(err, &se) {
				return err
			}
			c.mu.Lock()
			h.StreamErrorLocked(se)
			c.mu.Unlock()
		}
		h.FrameDone(br.Buffered() == 0)
	}
}

// Base is s itself: a side's stream, which embeds Stream, has it too
// (Streams' constraint).
func (s *Stream) Base() *Stream { return s }

// Streams are a side's open streams by id; P is its stream type, which
// embeds Stream.
type Streams[P interface{ Base() *Stream }] map[uint32]P

// Lookup is open stream id's Stream, nil if none.
func (m Streams[P]) Lookup(id uint32) *Stream {
	if p, ok := m[id]; ok {
		return p.Base()
	}
	return nil
}

// Each calls f for every open stream until f fails.
func (m Streams[P]) Each(f func(*Stream) error) error {
	for _, p := range m {
		if err := f(p.Base()); err != nil {
			return err
		}
	}
	return nil
}

// Forget removes st if it is open; false if it was not.
func (m Streams[P]) Forget(st *Stream) bool {
	if p, ok := m[st.ID]; ok && p.Base() == st {
		delete(m, st.ID)
		return true
	}
	return false
}
