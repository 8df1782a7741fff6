package h2client

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
)

const (
	// maxPending is how many bytes of HEADERS and DATA may wait for the
	// writer before a writer waits for room.
	maxPending = 64 << 10
	// maxControlPending fails a connection whose peer lets that many
	// bytes of control frames queue without reading them.
	maxControlPending = 1 << 20
	// maxKeepBuf: a write buffer that grew beyond it is not kept.
	maxKeepBuf = 128 << 10
	// initialWindow is HTTP/2's initial flow-control window.
	initialWindow = 65535
	// maxWindow is the largest flow-control window.
	maxWindow = 1<<31 - 1
	// minFrameSize is the frame size the client reads (the default; it
	// advertises no other) and the peer's until its SETTINGS.
	minFrameSize = 16 << 10
	// maxStreamID is the last client stream id.
	maxStreamID = 1<<31 - 1
	// goAwayTimeout bounds the write of the GOAWAY of a connection the
	// client ends after a protocol error.
	goAwayTimeout = time.Second
)

var (
	errFlood       = errors.New("h2client: peer does not read control frames")
	errPingTimeout = errors.New("h2client: PING timed out")
	errIdle        = errors.New("h2client: idle connection closed")
)

// conn is one HTTP/2 connection. Its read loop runs on a goroutine of its
// own; requests are written by their callers (HEADERS) and their body
// writers (DATA, trailers). Frames are written into wbuf under mu by
// whoever makes them, and to the socket by one writer at a time
// (flushLocked): what was queued while it wrote goes in its next write.
type conn struct {
	cl     *Client
	addr   string
	nc     net.Conn
	br     *bufio.Reader
	fr     *http2.Framer
	frames atomic.Uint64 // frames read, for the keep-alive PING

	mu   sync.Mutex
	cond sync.Cond // L is &mu: send windows opened, room in wbuf, state changed

	// Write side (under mu).
	wbuf, spare []byte
	ctrlBytes   int // of control frames in wbuf
	flushing    bool
	werr        error
	// sentID: the streams below it had their HEADERS handed to a write
	// (the others' never left: the peer did not process them).
	sentID uint32
	// deadline is the socket's write deadline; writeBy, when set, bounds
	// the writes sooner (the timer's PING, a closing connection's GOAWAY).
	deadline, writeBy time.Time
	henc              *hpack.Encoder
	hbuf              headerBuf
	peerMaxFrame      uint32
	peerWindow        int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxList       int64 // the peer's SETTINGS_MAX_HEADER_LIST_SIZE, -1: none
	sendWin           int64 // connection send window

	// Streams (under mu).
	streams    map[uint32]*stream
	nextID     uint32
	reserved   int    // streams getConn promised to callers
	maxStreams uint32 // the peer's SETTINGS_MAX_CONCURRENT_STREAMS, capped
	inflow     int64  // connection receive window left, as the peer sees it
	unacked    int64  // connection bytes consumed and not yet returned
	goAway     bool   // GOAWAY received: no new stream
	goAwayID   uint32
	err        error // why the connection ended, once it did
	// closeLater are request bodies to close once mu is released (a
	// body writer blocked in Read stops when its body is closed);
	// pendingClose says there are.
	closeLater   []io.Closer
	pendingClose atomic.Bool

	// Keep-alive and idle (under mu). timerDone, closed when the
	// connection fails, ends keepAlive.
	timer       *time.Timer
	timerDone   chan struct{}
	period      time.Duration
	lastFrames  uint64
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

// reserve takes a stream of cc for a caller of getConn; false when cc
// takes no new stream or has none free.
func (cc *conn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil || cc.goAway || cc.nextID+2*uint32(cc.reserved) > maxStreamID { //nolint:gosec // bounded by maxStreams
		return false
	}
	if uint32(len(cc.streams)+cc.reserved) >= cc.maxStreams { //nolint:gosec // bounded by maxStreams
		return false
	}
	cc.reserved++
	cc.idleSince = time.Time{}
	return true
}

func (cc *conn) idle() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams) == 0 && cc.reserved == 0
}

// closeIfIdle closes cc when it carries no stream.
func (cc *conn) closeIfIdle() {
	cc.mu.Lock()
	if len(cc.streams) != 0 || cc.reserved != 0 {
		cc.mu.Unlock()
		return
	}
	cc.goAway = true // takes no new stream while it closes
	cc.mu.Unlock()
	cc.fail(errIdle)
}

// readLoop reads frames until the connection fails.
func (cc *conn) readLoop() {
	var err error
	for {
		var f http2.Frame
		f, err = cc.fr.ReadFrame()
		if err == nil {
			cc.frames.Add(1)
			err = cc.process(f)
		}
		if err != nil {
			var se http2.StreamError
			if !errors.As(err, &se) {
				break
			}
			cc.mu.Lock()
			cc.resetLocked(cc.streams[se.StreamID], se.StreamID, se.Code, fmt.Errorf("h2client: %w", se))
			cc.mu.Unlock()
		}
		cc.closePending()
		if cc.br.Buffered() == 0 {
			cc.mu.Lock()
			cc.flushLocked()
			cc.mu.Unlock()
		}
	}
	cc.connError(err)
}

// closeLaterLocked has c closed once mu is released.
func (cc *conn) closeLaterLocked(c io.Closer) {
	cc.closeLater = append(cc.closeLater, c)
	cc.pendingClose.Store(true)
}

// closePending closes the bodies closeLaterLocked queued.
func (cc *conn) closePending() {
	if !cc.pendingClose.Load() {
		return
	}
	cc.mu.Lock()
	l := cc.closeLater
	cc.closeLater = nil
	cc.pendingClose.Store(false)
	cc.mu.Unlock()
	for _, c := range l {
		_ = c.Close()
	}
}

// connError ends the connection after the read loop's error: a
// protocol error of the peer gets GOAWAY first.
func (cc *conn) connError(err error) {
	var code http2.ErrCode
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		code = http2.ErrCodeFrameSize
	default:
		cc.fail(fmt.Errorf("h2client: connection lost: %w", err))
		return
	}
	cc.mu.Lock()
	if cc.err == nil && cc.werr == nil {
		_ = cc.fr.WriteGoAway(0, code, nil)
		cc.writeBy = time.Now().Add(goAwayTimeout)
		cc.setDeadlineLocked(cc.writeBy)
		cc.drainLocked()
	}
	cc.mu.Unlock()
	cc.fail(fmt.Errorf("h2client: peer protocol error: %w", err))
}

// fail ends the connection with err: it is closed and every stream on it
// fails, with an error wrapping ErrNotProcessed for those whose HEADERS
// never left.
func (cc *conn) fail(err error) {
	cc.mu.Lock()
	cc.failLocked(err)
	cc.mu.Unlock()
	cc.closePending()
}

func (cc *conn) failLocked(err error) {
	if cc.err != nil {
		return
	}
	cc.err = err
	if cc.werr == nil {
		cc.werr = err
	}
	_ = cc.nc.Close()
	if cc.timer != nil {
		cc.timer.Stop()
		close(cc.timerDone)
	}
	var unsent error
	for id, st := range cc.streams {
		if id < cc.sentID {
			cc.abortLocked(st, err)
			continue
		}
		if unsent == nil {
			unsent = fmt.Errorf("%w: %w", ErrNotProcessed, err)
		}
		cc.abortLocked(st, unsent)
	}
	cc.cond.Broadcast()
}

// process handles one frame read.
func (cc *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return cc.processData(f)
	case *http2.MetaHeadersFrame:
		return cc.processHeaders(f)
	case *http2.SettingsFrame:
		return cc.processSettings(f)
	case *http2.WindowUpdateFrame:
		return cc.processWindowUpdate(f)
	case *http2.PingFrame:
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if f.IsAck() {
			cc.pingOut = false
			return nil
		}
		return cc.controlLocked(func() error { return cc.fr.WritePing(true, f.Data) })
	case *http2.RSTStreamFrame:
		cc.mu.Lock()
		defer cc.mu.Unlock()
		st := cc.streams[f.StreamID]
		if st == nil {
			if f.StreamID >= cc.nextID {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			return nil
		}
		var err error
		if f.ErrCode == http2.ErrCodeRefusedStream {
			err = fmt.Errorf("%w: stream refused (REFUSED_STREAM)", ErrNotProcessed)
		} else {
			err = fmt.Errorf("h2client: stream reset by the peer: %w", http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
		}
		cc.abortLocked(st, err)
		return nil
	case *http2.GoAwayFrame:
		return cc.processGoAway(f)
	case *http2.PushPromiseFrame:
		// SETTINGS_ENABLE_PUSH is 0.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // PRIORITY, unknown frame types: ignored
}

func (cc *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingHeaderTableSize:
			cc.henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - cc.peerWindow
			cc.peerWindow = int64(s.Val)
			for _, st := range cc.streams {
				st.sendWin += delta
				if st.sendWin > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			cc.peerMaxFrame = s.Val
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = min(s.Val, maxStreamsCap)
		case http2.SettingMaxHeaderListSize:
			cc.peerMaxList = int64(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cc.cond.Broadcast()
	return cc.controlLocked(cc.fr.WriteSettingsAck)
}

func (cc *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		cc.sendWin += inc
		if cc.sendWin > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		cc.cond.Broadcast()
		return nil
	}
	st := cc.streams[f.StreamID]
	if st == nil {
		if f.StreamID >= cc.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	st.sendWin += inc
	if st.sendWin > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	cc.cond.Broadcast()
	return nil
}

// processGoAway: no new stream goes on cc; the streams above the last
// stream id the peer processed fail as not processed; the connection
// closes once the others are done.
func (cc *conn) processGoAway(f *http2.GoAwayFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.goAway && f.LastStreamID > cc.goAwayID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	cc.goAway, cc.goAwayID = true, f.LastStreamID
	for id, st := range cc.streams {
		if id > f.LastStreamID {
			cc.abortLocked(st, fmt.Errorf("%w: GOAWAY (%v, last stream %d)", ErrNotProcessed, f.ErrCode, f.LastStreamID))
		}
	}
	if len(cc.streams) == 0 && cc.reserved == 0 {
		cc.failLocked(fmt.Errorf("h2client: connection ended by GOAWAY (%v)", f.ErrCode))
	}
	return nil
}

func (cc *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	data := f.Data()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if n > cc.inflow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	cc.inflow -= n
	st := cc.streams[id]
	if st == nil || st.remoteDone || !st.gotHead {
		if st == nil && id >= cc.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		cc.creditLocked(nil, n)
		if st == nil {
			return nil // a stream the client reset, or done
		}
		if !st.gotHead {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.inflow {
		cc.creditLocked(nil, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.inflow -= n
	if pad := n - int64(len(data)); pad > 0 {
		cc.creditLocked(st, pad)
	}
	st.gotLen += int64(len(data))
	end := f.StreamEnded()
	if st.declLen >= 0 && (st.gotLen > st.declLen || end && st.gotLen != st.declLen) {
		cc.creditLocked(nil, int64(len(data)))
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if len(data) > 0 && !st.body.push(data) {
		// The caller closed the body: the bytes go back at once.
		cc.creditLocked(st, int64(len(data)))
	}
	if end {
		st.body.end(nil, nil)
		cc.remoteDoneLocked(st)
	}
	return nil
}

func (cc *conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	cc.mu.Lock()
	defer cc.mu.Unlock()
	st := cc.streams[id]
	if st == nil {
		if id%2 == 0 || id >= cc.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil // a stream the client reset, or done
	}
	if st.remoteDone {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if f.Truncated {
		// Over the client's header list limit.
		cc.resetLocked(st, id, http2.ErrCodeProtocol, fmt.Errorf("h2client: response header list larger than %d bytes", cc.cl.maxHeaderBytes))
		return nil
	}
	if st.gotHead {
		// Trailers.
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		if st.declLen >= 0 && st.gotLen != st.declLen {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.body.end(trailerOf(f), nil)
		cc.remoteDoneLocked(st)
		return nil
	}
	resp, informational, err := st.responseOf(f) //nolint:bodyclose // the caller's, delivered below
	if err != nil {
		cc.resetLocked(st, id, http2.ErrCodeProtocol, err)
		return nil
	}
	if informational {
		if f.StreamEnded() {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		// The 1xx heads count against the response header limit
		// together (as x/net's), so a peer cannot send them forever.
		for _, hf := range f.Fields {
			st.infoBytes += int64(hf.Size())
		}
		if st.infoBytes > int64(cc.cl.maxHeaderBytes) {
			cc.resetLocked(st, id, http2.ErrCodeProtocol, fmt.Errorf("h2client: 1xx responses' header lists larger than %d bytes", cc.cl.maxHeaderBytes))
		}
		return nil
	}
	if f.StreamEnded() && st.declLen > 0 {
		// Malformed (RFC 9113 8.1.1): the content-length says bytes
		// that will never come.
		cc.resetLocked(st, id, http2.ErrCodeProtocol, fmt.Errorf("h2client: malformed response: content-length %d and END_STREAM on its HEADERS", st.declLen))
		return nil
	}
	st.gotHead = true
	if f.StreamEnded() {
		st.body.end(nil, nil)
		cc.remoteDoneLocked(st)
	}
	st.deliver(resp, nil)
	return nil
}

// remoteDoneLocked: the peer ended st (END_STREAM).
func (cc *conn) remoteDoneLocked(st *stream) {
	st.remoteDone = true
	cc.forgetLocked(st)
}

func (cc *conn) localDoneLocked(st *stream) {
	st.localDone = true
	cc.forgetLocked(st)
}

// forgetLocked removes st once both sides ended it.
func (cc *conn) forgetLocked(st *stream) {
	if st.remoteDone && st.localDone && cc.streams[st.id] == st {
		delete(cc.streams, st.id)
		cc.noteIdleLocked()
	}
}

func (cc *conn) noteIdleLocked() {
	if len(cc.streams) != 0 || cc.reserved != 0 {
		return
	}
	cc.idleSince = time.Now()
	if cc.goAway {
		cc.failLocked(errors.New("h2client: connection ended by GOAWAY"))
	}
}

// abortLocked ends st at once with err (RST_STREAM sent or received,
// the connection failed): a caller waiting for the head gets err, and so
// does its body unless the response was complete; its request body
// writer stops.
func (cc *conn) abortLocked(st *stream, err error) {
	if st.reset {
		return
	}
	st.reset = true
	complete := st.remoteDone
	st.remoteDone, st.localDone = true, true
	if cc.streams[st.id] == st {
		delete(cc.streams, st.id)
		cc.noteIdleLocked()
	}
	st.deliver(nil, err)
	if !complete {
		if n := st.body.end(nil, err); n > 0 {
			cc.creditLocked(nil, int64(n))
		}
	}
	st.stopBodyWriter()
	cc.cond.Broadcast()
}

// resetLocked sends RST_STREAM for id (st may be nil) and aborts st.
func (cc *conn) resetLocked(st *stream, id uint32, code http2.ErrCode, err error) {
	if st != nil {
		if st.reset {
			return
		}
		cc.abortLocked(st, err)
	}
	_ = cc.controlLocked(func() error { return cc.fr.WriteRSTStream(id, code) })
}

// controlLocked writes a control frame; they never wait for room, but a
// peer that lets them pile up loses the connection. Only control frames
// count: HEADERS and DATA wait for room, though one DATA frame may be as
// large as the peer's SETTINGS_MAX_FRAME_SIZE.
func (cc *conn) controlLocked(write func() error) error {
	if cc.werr != nil {
		return cc.werr
	}
	if cc.ctrlBytes > maxControlPending {
		cc.failLocked(errFlood)
		return errFlood
	}
	n := len(cc.wbuf)
	err := write()
	cc.ctrlBytes += len(cc.wbuf) - n
	return err
}

// waitRoomLocked waits until wbuf has room for a HEADERS or DATA frame
// of st (nil: a stream not opened yet); errStreamReset once st was
// reset, which ends the wait at once.
func (cc *conn) waitRoomLocked(st *stream) error {
	for len(cc.wbuf) >= maxPending && cc.werr == nil {
		if st != nil && st.reset {
			return errStreamReset
		}
		if !cc.flushing {
			cc.flushLocked()
			continue
		}
		cc.cond.Wait()
	}
	return cc.werr
}

// flushLocked writes wbuf unless another goroutine is writing (it writes
// what was added meanwhile when its write returns). mu is released during
// the write, which must complete within the write timeout (or writeBy):
// a peer that does not take it fails the connection.
func (cc *conn) flushLocked() {
	wrote := false
	for len(cc.wbuf) > 0 && !cc.flushing && cc.werr == nil {
		wrote = true
		cc.flushing = true
		b := cc.wbuf
		cc.wbuf, cc.spare = cc.spare[:0], nil
		cc.ctrlBytes = 0
		cc.sentID = cc.nextID
		cc.setDeadlineLocked(cc.writeDeadlineLocked())
		cc.mu.Unlock()
		_, err := cc.nc.Write(b)
		cc.mu.Lock()
		cc.flushing = false
		if cap(b) <= maxKeepBuf {
			cc.spare = b[:0]
		}
		if err != nil {
			cc.failLocked(fmt.Errorf("h2client: write: %w", err))
		}
		cc.cond.Broadcast()
	}
	if wrote && cc.werr == nil {
		// Nothing pending: no deadline left to expire while the
		// connection is idle (crypto/tls writes from a Read too, the
		// answer to a KeyUpdate, which an expired deadline would fail).
		cc.setDeadlineLocked(cc.writeBy)
	}
}

// writeDeadlineLocked is the deadline of a write starting now.
func (cc *conn) writeDeadlineLocked() time.Time {
	var dl time.Time
	if d := cc.cl.writeTimeout; d > 0 {
		dl = time.Now().Add(d)
	}
	if !cc.writeBy.IsZero() && (dl.IsZero() || cc.writeBy.Before(dl)) {
		dl = cc.writeBy
	}
	return dl
}

// setDeadlineLocked sets the socket's write deadline (it applies to a
// write in progress too).
func (cc *conn) setDeadlineLocked(dl time.Time) {
	if !dl.Equal(cc.deadline) {
		cc.deadline = dl
		_ = cc.nc.SetWriteDeadline(dl)
	}
}

// drainLocked returns once everything queued was written (or writing
// failed), whoever writes it.
func (cc *conn) drainLocked() {
	for {
		cc.flushLocked()
		// A write that failed (here or in the flusher waited for) ends
		// it: nothing more will be written.
		if cc.werr != nil || !cc.flushing && len(cc.wbuf) == 0 {
			return
		}
		cc.cond.Wait()
	}
}

// creditLocked returns n bytes (consumed by a caller, or dropped) to the
// peer's connection window and, while the peer may still send on it,
// st's; WINDOW_UPDATE goes when a quarter of a window is due.
func (cc *conn) creditLocked(st *stream, n int64) {
	if n <= 0 {
		return
	}
	cc.unacked += n
	if w := int64(cc.cl.connWindow); cc.unacked >= w/4 {
		inc := cc.unacked
		if cc.controlLocked(func() error { return cc.fr.WriteWindowUpdate(0, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			cc.inflow += inc
			cc.unacked = 0
		}
	}
	if st == nil || st.remoteDone {
		return
	}
	st.unacked += n
	if w := int64(cc.cl.streamWindow); st.unacked >= w/4 {
		inc := st.unacked
		if cc.controlLocked(func() error { return cc.fr.WriteWindowUpdate(st.id, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			st.inflow += inc
			st.unacked = 0
		}
	}
}

// credit returns n bytes the caller read (or dropped) from st's body.
func (cc *conn) credit(st *stream, n int) {
	if n <= 0 {
		return
	}
	cc.mu.Lock()
	before := len(cc.wbuf)
	cc.creditLocked(st, int64(n))
	if len(cc.wbuf) != before {
		cc.flushLocked()
	}
	cc.mu.Unlock()
}

// startTimer starts the keep-alive and idle checks (cl.mu held; cc not
// shared yet).
func (cc *conn) startTimer() {
	cl := cc.cl
	var p time.Duration
	for _, d := range []time.Duration{cl.sendPing, cl.idleTimeout} {
		if d > 0 && (p == 0 || d < p) {
			p = d
		}
	}
	if p == 0 {
		return
	}
	if cl.sendPing > 0 {
		p = min(p, cl.pingTimeout)
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return
	}
	cc.period = p
	cc.lastFrameAt = time.Now()
	cc.timer = time.NewTimer(p)
	cc.timerDone = make(chan struct{})
	cl.wg.Go(cc.keepAlive)
}

// keepAlive runs tick each period until the connection fails, on a
// goroutine of the Client's wait group: Close waits for it, so no tick
// runs once Close returned.
func (cc *conn) keepAlive() {
	for {
		select {
		case <-cc.timer.C:
			cc.tick()
		case <-cc.timerDone:
			return
		}
	}
}

// tick runs on keepAlive's goroutine: PING after sendPing without a
// frame read, fail when its ACK is late; close after idleTimeout without
// a stream.
func (cc *conn) tick() {
	cl := cc.cl
	cc.mu.Lock()
	defer cc.closePending()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return
	}
	now := time.Now()
	if n := cc.frames.Load(); n != cc.lastFrames {
		cc.lastFrames, cc.lastFrameAt = n, now
	}
	if cl.sendPing > 0 {
		switch {
		case cc.pingOut && now.Sub(cc.pingAt) >= cl.pingTimeout:
			cc.failLocked(errPingTimeout)
			return
		case !cc.pingOut && now.Sub(cc.lastFrameAt) >= cl.sendPing:
			cc.pingOut, cc.pingAt = true, now
			_ = cc.controlLocked(func() error { return cc.fr.WritePing(false, [8]byte{'w', 'e', 'f', 't'}) })
			cc.flushWithinLocked(cl.pingTimeout)
		}
	}
	if d := cl.idleTimeout; d > 0 && !cc.idleSince.IsZero() && len(cc.streams) == 0 && cc.reserved == 0 && now.Sub(cc.idleSince) >= d {
		cc.goAway = true
		cc.failLocked(errIdle)
		return
	}
	if cc.err == nil {
		cc.timer.Reset(cc.period)
	}
}

// flushWithinLocked writes wbuf from the timer within d: a peer that does
// not take it in time fails the connection instead of holding the timer
// in the write.
func (cc *conn) flushWithinLocked(d time.Duration) {
	if cc.flushing || len(cc.wbuf) == 0 || cc.werr != nil {
		return
	}
	prev, by := cc.writeBy, time.Now().Add(d)
	cc.writeBy = by
	cc.flushLocked()
	if cc.writeBy.Equal(by) { // not shortened meanwhile (connError)
		cc.writeBy = prev
		if cc.werr == nil {
			cc.setDeadlineLocked(prev)
		}
	}
}
