package h2server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// prefaceTail is the client preface.
	preface = http2.ClientPreface
	// maxPending is how many bytes of HEADERS and DATA may wait for the
	// writer before a handler waits for room.
	maxPending = 64 << 10
	// maxQueuedControlFrames closes a connection whose peer makes it
	// queue more control frames (PING and SETTINGS ACKs, RST_STREAM,
	// WINDOW_UPDATE) than that without reading them: ping, settings and
	// reset floods (CVE-2019-9512, CVE-2019-9515, CVE-2019-9514), as
	// net/http's maxQueuedControlFrames.
	maxQueuedControlFrames = 10000
	// maxKeepBuf: a write buffer that grew beyond it is not kept.
	maxKeepBuf = 128 << 10
	// initialWindow is HTTP/2's initial flow-control window.
	initialWindow = 65535
	// maxWindow is the largest flow-control window.
	maxWindow = 1<<31 - 1
	// maxFrameSize is the frame size the server reads (the default; it
	// does not advertise another).
	maxFrameSize = 16 << 10
	// goAwayTimeout is how long a peer has to take the GOAWAY of a
	// connection that ends (idle, or a connection error) before it is
	// closed regardless (net/http's goAwayTimeout).
	goAwayTimeout = time.Second
)

var (
	errStreamReset = errors.New("h2server: stream reset")
	errConnClosed  = errors.New("h2server: connection closed")
	errFlood       = errors.New("h2server: peer does not read control frames")
)

// conn is one HTTP/2 connection. Its serve goroutine is the read loop;
// handlers run on goroutines of their own. Frames are written into wbuf
// under mu by whoever produces them and written to the socket by one
// flusher at a time (flushLocked): everything queued while it wrote goes
// in its next write.
type conn struct {
	s          *Server
	nc         net.Conn
	br         *bufio.Reader
	ownBR      bool
	fr         *http2.Framer
	ctx        context.Context
	cancel     context.CancelFunc
	remoteAddr string
	tls        *tls.ConnectionState
	frames     atomic.Uint64 // frames read, for the keep-alive PING

	mu   sync.Mutex
	cond sync.Cond // L is &mu: windows opened, room in wbuf, state changed

	// Write side (under mu).
	wbuf, spare  []byte
	flushing     bool
	flushDue     bool           // a flushSoonLocked goroutine is due
	flushers     sync.WaitGroup // flushSoonLocked's goroutines
	flushSoon    func()         // c.flushSoonRun
	werr         error
	ctrlQueued   int       // control frames in wbuf
	writeBy      time.Time // a write's deadline when the connection ends (zero: none)
	deadline     time.Time // the socket's write deadline, as last set
	henc         *hpack.Encoder
	hbuf         headerBuf
	peerMaxFrame uint32
	peerWindow   int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	sendWin      int64 // connection send window

	// Streams (under mu).
	streams    map[uint32]*stream
	maxID      uint32
	running    int
	queue      []*stream
	inflow     int64 // connection receive window left, as the peer sees it
	unacked    int64 // connection bytes consumed and not yet returned
	started    bool  // the server preface was written
	goAwayTx   bool  // shutting down: no new stream
	goAwaySent bool  // GOAWAY written
	goAwayRx   bool  // GOAWAY received
	closed     bool
	// resetIDs are the last streams the server reset.
	resetIDs  [16]uint32
	resetNext uint32

	// Keep-alive and idle (under mu).
	timer      *time.Timer
	period     time.Duration
	lastFrames uint64
	// lastFrameAt is when the timer saw the frame count change last.
	lastFrameAt time.Time
	pingOut     bool
	pingAt      time.Time
	idleSince   time.Time
}

// headerBuf collects the hpack encoder's output.
type headerBuf struct{ b []byte }

func (h *headerBuf) Write(p []byte) (int, error) {
	h.b = append(h.b, p...)
	return len(p), nil
}

// frameSink is the Framer's writer: frames go into wbuf (under mu).
type frameSink struct{ c *conn }

func (w frameSink) Write(p []byte) (int, error) {
	w.c.wbuf = append(w.c.wbuf, p...)
	return len(p), nil
}

func (s *Server) newConn(ctx context.Context, nc net.Conn, br *bufio.Reader) *conn {
	c := &conn{
		s:            s,
		nc:           nc,
		br:           br,
		remoteAddr:   nc.RemoteAddr().String(),
		tls:          tlsState(nc),
		streams:      map[uint32]*stream{},
		peerMaxFrame: maxFrameSize,
		peerWindow:   initialWindow,
		sendWin:      initialWindow,
		inflow:       initialWindow,
	}
	c.cond.L = &c.mu
	c.flushSoon = c.flushSoonRun
	if c.br == nil {
		c.br = s.getReader(nc)
		c.ownBR = true
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.fr = http2.NewFramer(frameSink{c}, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = s.maxHeaderBytes()
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// serve is the read loop.
func (c *conn) serve() {
	defer c.close()
	if !c.handshake() {
		return
	}
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			c.frames.Add(1)
			err = c.process(f)
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.mu.Lock()
				c.resetLocked(c.streams[se.StreamID], se.StreamID, se.Code)
				c.mu.Unlock()
			} else {
				c.connError(err)
				return
			}
		}
		if c.br.Buffered() == 0 {
			// The writer writes what was queued: the read loop never waits
			// for the peer to read (a peer that reads nothing while it
			// sends PINGs is dropped once the queue is full, not obeyed).
			c.mu.Lock()
			c.flushSoonLocked()
			c.mu.Unlock()
		}
	}
}

// connError ends the connection after a read or protocol error: a
// protocol error gets GOAWAY, then what the peer still sends is read and
// dropped for up to a second, so that the close does not reset the
// connection before the peer read the GOAWAY.
func (c *conn) connError(err error) {
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		code = http2.ErrCodeFrameSize
	default:
		return // the connection failed or the peer closed it
	}
	c.mu.Lock()
	if c.started && !c.closed {
		c.goAwayTx, c.goAwaySent = true, true
		_ = c.controlLocked(func() error { return c.fr.WriteGoAway(c.maxID, code, nil) })
		c.setWriteByLocked(time.Now().Add(goAwayTimeout))
		c.drainLocked()
	}
	c.mu.Unlock()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
}

// handshake reads the client preface and its SETTINGS and writes the
// server's: SETTINGS, and a WINDOW_UPDATE that opens the connection's
// receive window.
func (c *conn) handshake() bool {
	s := c.s
	if d := s.ReadHeaderTimeout; d > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	}
	var buf [len(preface)]byte
	if _, err := io.ReadFull(c.br, buf[:]); err != nil || string(buf[:]) != preface {
		return false
	}
	c.mu.Lock()
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.maxStreams()},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(s.streamWindow())}, //nolint:gosec // positive
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.maxHeaderBytes()},
	)
	if w := int64(s.connWindow()); w > initialWindow {
		_ = c.fr.WriteWindowUpdate(0, uint32(w-initialWindow)) //nolint:gosec // bounded by int32
		c.inflow = w
	}
	c.started = true
	c.flushSoonLocked()
	c.mu.Unlock()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.connError(err)
		return false
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		c.connError(http2.ConnectionError(http2.ErrCodeProtocol))
		return false
	}
	if err := c.process(sf); err != nil {
		c.connError(err)
		return false
	}
	c.mu.Lock()
	c.flushSoonLocked() // its ACK
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(time.Time{})
	c.startTimer()
	c.mu.Lock()
	shut := c.goAwayTx
	c.mu.Unlock()
	if shut || c.serverShuttingDown() {
		c.goAway(http2.ErrCodeNo, true)
	}
	return true
}

func (c *conn) serverShuttingDown() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.shutdown
}

// process handles one frame read.
func (c *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.MetaHeadersFrame:
		return c.processHeaders(f)
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.IsAck() {
			c.pingOut = false
			return nil
		}
		if f.StreamID != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return c.controlLocked(func() error { return c.fr.WritePing(true, f.Data) })
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.streams[f.StreamID]
		if st == nil {
			if f.StreamID > c.maxID {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			return nil
		}
		c.abortLocked(st)
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goAwayRx = true
		idle := len(c.streams) == 0 && c.running == 0
		c.mu.Unlock()
		if idle {
			return errConnClosed
		}
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	case *http2.ContinuationFrame:
		// The Framer merges CONTINUATION into MetaHeadersFrame and
		// rejects any other.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // unknown frame types are ignored
}

func (c *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.cond.Broadcast()
	return c.controlLocked(c.fr.WriteSettingsAck)
}

func (c *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.cond.Broadcast()
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	st.sendWin += inc
	if st.sendWin > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.cond.Broadcast()
	return nil
}

func (c *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	data := f.Data()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.inflow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.inflow -= n
	st := c.streams[id]
	if st == nil || st.remoteDone {
		if st == nil && id > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.creditLocked(nil, n)
		if st == nil && c.wasReset(id) {
			return nil // sent before the peer read our RST_STREAM
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.inflow {
		c.creditLocked(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.inflow -= n
	if pad := n - int64(len(data)); pad > 0 {
		c.creditLocked(st, pad)
	}
	st.gotLen += int64(len(data))
	end := f.StreamEnded()
	if st.declLen >= 0 && (st.gotLen > st.declLen || end && st.gotLen != st.declLen) {
		c.creditLocked(nil, int64(len(data)))
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if len(data) > 0 && !st.body.push(data) {
		// The handler closed the body: the bytes go back at once.
		c.creditLocked(st, int64(len(data)))
	}
	if end {
		st.body.end(nil)
		c.remoteDoneLocked(st)
	}
	return nil
}

func (c *conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	defer c.mu.Unlock()
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if id <= c.maxID {
		st := c.streams[id]
		if st == nil {
			if c.wasReset(id) {
				return nil
			}
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		if st.remoteDone {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		// Trailers.
		if !f.StreamEnded() || f.Truncated || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		if st.declLen >= 0 && st.gotLen != st.declLen {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		tr, ok := trailerOf(f)
		if !ok {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.body.end(tr)
		c.remoteDoneLocked(st)
		return nil
	}
	c.maxID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if c.goAwayTx || c.goAwayRx {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if uint32(len(c.streams)) >= c.s.maxStreams() { //nolint:gosec // a map's length
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if f.Truncated {
		// Over SETTINGS_MAX_HEADER_LIST_SIZE: 431, not served.
		return c.refuseLargeLocked(id, f.StreamEnded())
	}
	st, code, bad := c.newStream(f)
	if bad != "" {
		return c.badRequestLocked(id, bad)
	}
	if code != http2.ErrCodeNo {
		return http2.StreamError{StreamID: id, Code: code}
	}
	c.streams[id] = st
	c.idleSince = time.Time{}
	if f.StreamEnded() {
		st.remoteDone = true
	}
	if c.running < int(c.s.maxStreams()) {
		c.running++
		go c.runHandlers(st)
		return nil
	}
	// Handlers of reset streams still run: queue (CVE-2023-44487).
	if len(c.queue) >= 4*int(c.s.maxStreams()) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.queue = append(c.queue, st)
	return nil
}

// remoteDoneLocked: the peer ended st (END_STREAM).
func (c *conn) remoteDoneLocked(st *stream) {
	st.remoteDone = true
	c.forgetLocked(st)
}

// forgetLocked removes st once both sides ended it.
func (c *conn) forgetLocked(st *stream) {
	if st.remoteDone && st.localDone && c.streams[st.id] == st {
		delete(c.streams, st.id)
		c.noteIdleLocked()
	}
}

func (c *conn) noteIdleLocked() {
	if len(c.streams) == 0 && c.running == 0 {
		c.idleSince = time.Now()
		if c.goAwayTx || c.goAwayRx {
			// Drained: end the connection (the read loop's read fails).
			c.drainLocked()
			_ = c.nc.Close()
		}
	}
}

// abortLocked ends st at once (RST_STREAM sent or received): its context
// is cancelled, its body fails (what was not read is dropped), its writes
// fail.
func (c *conn) abortLocked(st *stream) {
	st.reset = true
	st.remoteDone = true
	st.localDone = true
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
		c.noteIdleLocked()
	}
	st.cancel()
	// What the handler did not read goes back to the connection window
	// now: a queued stream's handler never runs to close its body.
	if n := st.body.abort(errStreamReset); n > 0 {
		c.creditLocked(st, int64(n))
	}
	c.cond.Broadcast()
}

// resetLocked sends RST_STREAM for id (st may be nil) and aborts st.
func (c *conn) resetLocked(st *stream, id uint32, code http2.ErrCode) {
	if st != nil {
		if st.reset {
			return
		}
		c.abortLocked(st)
	}
	c.resetIDs[c.resetNext%uint32(len(c.resetIDs))] = id
	c.resetNext++
	_ = c.controlLocked(func() error { return c.fr.WriteRSTStream(id, code) })
}

// wasReset reports whether the server recently reset stream id: frames
// the peer sent on it before it read the RST_STREAM are ignored (RFC 9113
// 5.1, "closed").
func (c *conn) wasReset(id uint32) bool {
	for _, r := range c.resetIDs {
		if r == id {
			return true
		}
	}
	return false
}

// controlLocked queues a control frame; they never wait for room, but a
// peer that lets more than maxQueuedControlFrames pile up loses the
// connection (closed: a GOAWAY would queue behind what it does not read).
func (c *conn) controlLocked(write func() error) error {
	if c.werr != nil {
		return c.werr
	}
	if c.ctrlQueued >= maxQueuedControlFrames {
		c.failLocked(errFlood)
		return errFlood
	}
	c.ctrlQueued++
	return write()
}

// waitRoomLocked waits until wbuf has room for a HEADERS or DATA frame.
func (c *conn) waitRoomLocked() error {
	for len(c.wbuf) >= maxPending && c.werr == nil {
		if !c.flushing {
			c.flushLocked()
			continue
		}
		c.cond.Wait()
	}
	return c.werr
}

// flushLocked writes wbuf unless another goroutine is writing (it writes
// what was added meanwhile when its write returns). mu is released during
// the write, which must complete within the write timeout (or writeBy).
func (c *conn) flushLocked() {
	wrote := false
	for len(c.wbuf) > 0 && !c.flushing && c.werr == nil {
		wrote = true
		c.flushing = true
		b := c.wbuf
		c.wbuf, c.spare = c.spare[:0], nil
		c.ctrlQueued = 0
		// Set under mu: setWriteByLocked may shorten it meanwhile.
		c.setDeadlineLocked(c.writeDeadlineLocked())
		c.mu.Unlock()
		_, err := c.nc.Write(b)
		c.mu.Lock()
		c.flushing = false
		if cap(b) <= maxKeepBuf {
			c.spare = b[:0]
		}
		if err != nil {
			c.failLocked(fmt.Errorf("h2server: write: %w", err))
		}
		c.cond.Broadcast()
	}
	if wrote && c.werr == nil {
		// No write pending: no deadline left to expire while the
		// connection is idle (crypto/tls writes from a Read too: the
		// answer to a peer's KeyUpdate, which an expired deadline fails,
		// and the connection with it at its next write).
		c.setDeadlineLocked(c.writeBy)
	}
}

// writeDeadlineLocked is the deadline of a write starting now: the write
// timeout (a pending write, not a stream's life: an idle stream has no
// write pending), or writeBy when the connection ends sooner.
func (c *conn) writeDeadlineLocked() time.Time {
	var dl time.Time
	if d := c.s.writeTimeout(); d > 0 {
		dl = time.Now().Add(d)
	}
	if !c.writeBy.IsZero() && (dl.IsZero() || c.writeBy.Before(dl)) {
		dl = c.writeBy
	}
	return dl
}

// setDeadlineLocked sets the socket's write deadline (it applies to a
// write in progress too).
func (c *conn) setDeadlineLocked(dl time.Time) {
	if !dl.Equal(c.deadline) {
		c.deadline = dl
		_ = c.nc.SetWriteDeadline(dl)
	}
}

// setWriteByLocked bounds the connection's writes, the one in progress
// included, by t (zero: the write timeout alone again).
func (c *conn) setWriteByLocked(t time.Time) {
	c.writeBy = t
	if t.IsZero() {
		return // the next write sets its own deadline
	}
	c.setDeadlineLocked(t)
}

// flushSoonLocked has a goroutine of its own write wbuf, unless a write
// is in progress or due (that one takes what is queued): the caller goes
// on, and what it queues before the goroutine runs (on a single P: until
// the caller blocks) shares the write.
func (c *conn) flushSoonLocked() {
	if c.flushing || c.flushDue || len(c.wbuf) == 0 || c.werr != nil {
		return
	}
	c.flushDue = true
	c.flushers.Add(1)
	go c.flushSoon() // a func value without arguments: no allocation
}

// flushSoonRun is flushSoonLocked's goroutine (c.flushSoon, the method
// value made once in newConn).
func (c *conn) flushSoonRun() {
	defer c.flushers.Done()
	c.mu.Lock()
	c.flushDue = false
	c.flushLocked()
	c.mu.Unlock()
}

// drainLocked returns once everything queued was written (or writing
// failed), whoever writes it: before the connection is closed.
func (c *conn) drainLocked() {
	for {
		c.flushLocked()
		// A write of its own that failed leaves what was queued meanwhile:
		// nobody else writes it, nor wakes this one.
		if c.werr != nil || !c.flushing && len(c.wbuf) == 0 {
			return
		}
		c.cond.Wait()
	}
}

// failLocked ends the connection after a write error.
func (c *conn) failLocked(err error) {
	if c.werr == nil {
		c.werr = err
	}
	_ = c.nc.Close()
	c.cond.Broadcast()
}

// creditLocked returns n bytes (consumed by a handler, or discarded) to
// the peer's connection window and, while the peer may still send on it,
// st's; WINDOW_UPDATE goes when a quarter of a window is due.
func (c *conn) creditLocked(st *stream, n int64) {
	if n <= 0 {
		return
	}
	c.unacked += n
	// A quarter of the window: the peer is never blocked on what was
	// consumed, since inflow + buffered + unacked is the window.
	if w := int64(c.s.connWindow()); c.unacked >= w/4 {
		inc := c.unacked
		if c.controlLocked(func() error { return c.fr.WriteWindowUpdate(0, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			c.inflow += inc
			c.unacked = 0
		}
	}
	if st == nil || st.remoteDone {
		return
	}
	st.unacked += n
	if w := int64(c.s.streamWindow()); st.unacked >= w/4 {
		inc := st.unacked
		if c.controlLocked(func() error { return c.fr.WriteWindowUpdate(st.id, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			st.inflow += inc
			st.unacked = 0
		}
	}
}

// credit returns n bytes a handler read (or dropped) from st's body.
func (c *conn) credit(st *stream, n int) {
	c.mu.Lock()
	before := len(c.wbuf)
	c.creditLocked(st, int64(n))
	if len(c.wbuf) != before {
		c.flushLocked()
	}
	c.mu.Unlock()
}

// goAway sends GOAWAY with the last stream id seen; graceful lets the
// streams finish (the connection closes when none is left), otherwise the
// connection closes now.
func (c *conn) goAway(code http2.ErrCode, graceful bool) {
	c.mu.Lock()
	if !c.started {
		// handshake sends it after the server preface.
		c.goAwayTx = true
		c.mu.Unlock()
		return
	}
	c.goAwayTx = true
	if !c.goAwaySent || !graceful {
		c.goAwaySent = true
		_ = c.controlLocked(func() error { return c.fr.WriteGoAway(c.maxID, code, nil) })
	}
	c.drainLocked()
	idle := len(c.streams) == 0 && c.running == 0
	if idle || !graceful {
		_ = c.nc.Close()
	}
	c.mu.Unlock()
}

// close ends the connection: every stream's context is cancelled, their
// bodies and writes fail; it waits for the handlers to return.
func (c *conn) close() {
	c.cancel()
	_ = c.nc.Close()
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.werr == nil {
		c.werr = errConnClosed
	}
	for _, st := range c.streams {
		c.abortLocked(st)
	}
	for _, st := range c.queue {
		c.abortLocked(st)
	}
	c.cond.Broadcast()
	for c.running > 0 {
		c.cond.Wait()
	}
	c.queue = nil
	c.mu.Unlock()
	c.flushers.Wait()
	if c.ownBR {
		c.s.putReader(c.br)
	}
}

// startTimer starts the keep-alive and idle checks.
func (c *conn) startTimer() {
	s := c.s
	var p time.Duration
	for _, d := range []time.Duration{s.SendPingTimeout, s.IdleTimeout} {
		if d > 0 && (p == 0 || d < p) {
			p = d
		}
	}
	if p == 0 {
		return
	}
	if s.SendPingTimeout > 0 {
		p = min(p, s.pingTimeout())
	}
	c.mu.Lock()
	c.period = p
	c.idleSince = time.Now()
	c.lastFrameAt = c.idleSince
	c.timer = time.AfterFunc(p, c.tick)
	c.mu.Unlock()
}

// tick runs on the timer's goroutine: PING after SendPingTimeout without
// a frame, close when its ACK is late, GOAWAY after IdleTimeout idle.
func (c *conn) tick() {
	s := c.s
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := time.Now()
	if n := c.frames.Load(); n != c.lastFrames {
		c.lastFrames, c.lastFrameAt = n, now
	}
	if s.SendPingTimeout > 0 {
		switch {
		case c.pingOut && now.Sub(c.pingAt) >= s.pingTimeout():
			c.failLocked(errors.New("h2server: PING timed out"))
			return
		case !c.pingOut && now.Sub(c.lastFrameAt) >= s.SendPingTimeout:
			c.pingOut, c.pingAt = true, now
			_ = c.controlLocked(func() error { return c.fr.WritePing(false, [8]byte{'w', 'e', 'f', 't'}) })
			c.flushWithinLocked(s.pingTimeout())
		}
	}
	if d := s.IdleTimeout; d > 0 && !c.idleSince.IsZero() && len(c.streams) == 0 && c.running == 0 && now.Sub(c.idleSince) >= d {
		c.goAwayTx, c.goAwaySent = true, true
		_ = c.controlLocked(func() error { return c.fr.WriteGoAway(c.maxID, http2.ErrCodeNo, nil) })
		// The deadline applies to a write in progress too: whoever
		// writes, the timer does not wait beyond it.
		c.setWriteByLocked(now.Add(goAwayTimeout))
		c.drainLocked()
		_ = c.nc.Close()
		return
	}
	if !c.closed {
		c.timer.Reset(c.period)
	}
}

// flushWithinLocked writes wbuf from the timer within d: a peer that does
// not take it in time (dead, or reading nothing) fails the connection
// instead of holding the timer in the write, and with it the PING
// timeout. A write in progress elsewhere takes wbuf with it; the PING
// timeout ends that one.
func (c *conn) flushWithinLocked(d time.Duration) {
	if c.flushing || len(c.wbuf) == 0 || c.werr != nil {
		return
	}
	c.setWriteByLocked(time.Now().Add(d))
	c.flushLocked()
	if c.werr == nil {
		c.setWriteByLocked(time.Time{})
	}
}

// runHandlers serves st, then the queued streams, on this goroutine.
func (c *conn) runHandlers(st *stream) {
	for st != nil {
		st.serve()
		c.mu.Lock()
		st = nil
		for len(c.queue) > 0 && st == nil {
			next := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if !next.reset {
				st = next
			}
		}
		if st == nil {
			c.running--
			c.noteIdleLocked()
			c.cond.Broadcast()
		}
		c.mu.Unlock()
	}
}

// refuseLargeLocked answers a request whose header list was too large
// with 431 and ends its stream.
func (c *conn) refuseLargeLocked(id uint32, ended bool) error {
	return c.controlLocked(func() error {
		c.hbuf.b = c.hbuf.b[:0]
		_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "431"})
		if err := c.writeBlockLocked(id, true); err != nil {
			return err
		}
		if !ended {
			return c.fr.WriteRSTStream(id, http2.ErrCodeNo)
		}
		return nil
	})
}

// badRequestLocked answers a malformed request (RFC 9113 8.1.1: "a
// server MAY send an HTTP response prior to closing or resetting the
// stream") with 400 and why, as net/http's server does, then resets the
// stream with PROTOCOL_ERROR, the stream error it is: a client that read
// the whole response ignores the reset. The body goes only within the
// send windows.
func (c *conn) badRequestLocked(id uint32, why string) error {
	body := why + "\n"
	n := int64(len(body))
	withBody := n <= c.sendWin && n <= c.peerWindow && n <= int64(c.peerMaxFrame)
	err := c.controlLocked(func() error {
		c.hbuf.b = c.hbuf.b[:0]
		_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "400"})
		_ = c.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain; charset=utf-8"})
		_ = c.henc.WriteField(hpack.HeaderField{Name: "x-content-type-options", Value: "nosniff"})
		if !withBody {
			return c.writeBlockLocked(id, true)
		}
		_ = c.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		if err := c.writeBlockLocked(id, false); err != nil {
			return err
		}
		c.sendWin -= n
		return c.fr.WriteData(id, true, []byte(body))
	})
	if err != nil {
		return err
	}
	c.resetLocked(nil, id, http2.ErrCodeProtocol)
	return nil
}
