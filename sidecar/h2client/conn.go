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

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
)

const (
	// maxPending is how many bytes of HEADERS and DATA may wait for the
	// writer before a writer waits for room.
	maxPending = h2conn.MaxPending
	// maxControlPending fails a connection whose peer lets that many
	// bytes of control frames queue without reading them.
	maxControlPending = 1 << 20
	// initialWindow is HTTP/2's initial flow-control window.
	initialWindow = h2conn.InitialWindow
	// maxWindow is the largest flow-control window.
	maxWindow = h2conn.MaxWindow
	// minFrameSize is the frame size the client reads (the default; it
	// advertises no other) and the peer's until its SETTINGS.
	minFrameSize = h2conn.MinFrameSize
	// maxStreamID is the last client stream id.
	maxStreamID = 1<<31 - 1
	// goAwayTimeout bounds the write of the GOAWAY of a connection the
	// client ends after a protocol error.
	goAwayTimeout = time.Second
)

var (
	errPingTimeout = errors.New("h2client: PING timed out")
	errIdle        = errors.New("h2client: idle connection closed")
)

// conn is one HTTP/2 connection. Its read loop runs on a goroutine of its
// own; requests are written by their callers (HEADERS) and their body
// writers (DATA, trailers). Frames are written into the core's buffer
// under mu by whoever makes them, and to the socket by one writer at a
// time (FlushLocked): what was queued while it wrote goes in its next
// write.
type conn struct {
	h2conn.Core // under mu, its windows and writer
	cl          *Client
	addr        string
	nc          net.Conn
	br          *bufio.Reader

	mu   sync.Mutex
	cond sync.Cond // L is &mu: send windows opened, room to write, state changed

	// sentID: the streams below it had their HEADERS handed to a write
	// (the others' never left: the peer did not process them).
	sentID      uint32
	peerMaxList int64 // the peer's SETTINGS_MAX_HEADER_LIST_SIZE, -1: none

	// Streams (under mu).
	streams    h2conn.Streams[*stream]
	nextID     uint32
	reserved   int    // streams getConn promised to callers
	maxStreams uint32 // the peer's SETTINGS_MAX_CONCURRENT_STREAMS, capped
	goAway     bool   // GOAWAY received: no new stream
	goAwayID   uint32
	// closeLater are request bodies to close once mu is released (a
	// body writer blocked in Read stops when its body is closed);
	// pendingClose says there are.
	closeLater   []io.Closer
	pendingClose atomic.Bool

	// Keep-alive (under mu). timerDone, closed when the connection
	// fails, ends keepAlive.
	timer     *time.Timer
	timerDone chan struct{}
	period    time.Duration
}

var _ h2conn.Side = (*conn)(nil)

// reserve takes a stream of cc for a caller of getConn; false when cc
// takes no new stream or has none free.
func (cc *conn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ErrLocked() != nil || cc.goAway || cc.nextID+2*uint32(cc.reserved) > maxStreamID { //nolint:gosec // bounded by maxStreams
		return false
	}
	if uint32(len(cc.streams)+cc.reserved) >= cc.maxStreams { //nolint:gosec // bounded by maxStreams
		return false
	}
	cc.reserved++
	cc.IdleSince = time.Time{}
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
	cc.connError(cc.ReadFrames(cc.br, cc))
	cc.WaitFlushers()
}

// HandleFrame handles a frame read (h2conn.FrameHandler).
func (cc *conn) HandleFrame(f http2.Frame) error { return cc.process(f) }

// StreamErrorLocked resets the stream of se (h2conn.FrameHandler).
func (cc *conn) StreamErrorLocked(se http2.StreamError) {
	cc.resetLocked(cc.streams[se.StreamID], se.StreamID, se.Code, fmt.Errorf("h2client: %w", se))
}

// FrameDone closes the bodies queued to close and, once nothing more is
// buffered to read, writes what was queued (h2conn.FrameHandler).
func (cc *conn) FrameDone(drained bool) {
	cc.closePending()
	if drained {
		cc.mu.Lock()
		cc.FlushLocked()
		cc.mu.Unlock()
	}
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
	code, ok := h2conn.GoAwayCode(err)
	if !ok {
		cc.fail(fmt.Errorf("h2client: connection lost: %w", err))
		return
	}
	cc.mu.Lock()
	if cc.ErrLocked() == nil {
		_ = cc.Fr.WriteGoAway(0, code, nil)
		cc.SetWriteByLocked(time.Now().Add(goAwayTimeout))
		cc.DrainLocked()
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
	if cc.ErrLocked() != nil {
		return
	}
	cc.StopLocked(err)
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
	return cc.Process(f) // WINDOW_UPDATE, PING; PRIORITY and unknown types ignored
}

func (cc *conn) processSettings(f *http2.SettingsFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err := cc.SettingsLocked(f); err != nil || f.IsAck() {
		return err
	}
	return f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = min(s.Val, maxStreamsCap)
		case http2.SettingMaxHeaderListSize:
			cc.peerMaxList = int64(s.Val)
		}
		return nil
	})
}

// StreamLocked is open stream id (h2conn.Side).
func (cc *conn) StreamLocked(id uint32) (*h2conn.Stream, bool) {
	return cc.streams.Lookup(id), id < cc.nextID
}

// EachStreamLocked calls f for each open stream (h2conn.Side).
func (cc *conn) EachStreamLocked(f func(*h2conn.Stream) error) error {
	return cc.streams.Each(f)
}

// FailLocked ends the connection after a write error (h2conn.Side).
func (cc *conn) FailLocked(err error) { cc.failLocked(err) }

// WriteStartLocked: the streams opened so far had their HEADERS handed
// to a write (h2conn.Side).
func (cc *conn) WriteStartLocked() { cc.sentID = cc.nextID }

// ClosedLocked forgets s, which ended both ways (h2conn.Side).
func (cc *conn) ClosedLocked(s *h2conn.Stream) {
	if cc.streams.Forget(s) {
		cc.noteIdleLocked()
	}
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
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err := cc.TakeDataLocked(f); err != nil {
		return err
	}
	st := cc.streams[id]
	if st == nil || st.RemoteDone || !st.gotHead {
		if st == nil && id >= cc.nextID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		cc.CreditLocked(nil, int64(f.Length))
		if st == nil {
			return nil // a stream the client reset, or done
		}
		if !st.gotHead {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	return cc.DataLocked(&st.Stream, &st.body.Body, f)
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
	if st.RemoteDone {
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
		if st.DeclLen >= 0 && st.GotLen != st.DeclLen {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.body.end(trailerOf(f), nil)
		cc.RemoteDoneLocked(&st.Stream)
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
	if f.StreamEnded() && st.DeclLen > 0 {
		// Malformed (RFC 9113 8.1.1): the content-length says bytes
		// that will never come.
		cc.resetLocked(st, id, http2.ErrCodeProtocol, fmt.Errorf("h2client: malformed response: content-length %d and END_STREAM on its HEADERS", st.DeclLen))
		return nil
	}
	st.gotHead = true
	if f.StreamEnded() {
		st.body.end(nil, nil)
		cc.RemoteDoneLocked(&st.Stream)
	}
	st.deliver(resp, nil)
	return nil
}

func (cc *conn) noteIdleLocked() {
	if len(cc.streams) != 0 || cc.reserved != 0 {
		return
	}
	cc.IdleSince = time.Now()
	if cc.goAway {
		cc.failLocked(errors.New("h2client: connection ended by GOAWAY"))
	}
}

// abortLocked ends st at once with err (RST_STREAM sent or received,
// the connection failed): a caller waiting for the head gets err, and so
// does its body unless the response was complete; its request body
// writer stops.
func (cc *conn) abortLocked(st *stream, err error) {
	if st.Reset {
		return
	}
	st.Reset = true
	complete := st.RemoteDone
	st.RemoteDone, st.LocalDone = true, true
	if cc.streams.Forget(&st.Stream) {
		cc.noteIdleLocked()
	}
	st.deliver(nil, err)
	if !complete {
		if n := st.body.end(nil, err); n > 0 {
			cc.CreditLocked(nil, int64(n))
		}
	}
	st.stopBodyWriter()
	cc.cond.Broadcast()
}

// resetLocked sends RST_STREAM for id (st may be nil) and aborts st.
func (cc *conn) resetLocked(st *stream, id uint32, code http2.ErrCode, err error) {
	if st != nil {
		if st.Reset {
			return
		}
		cc.abortLocked(st, err)
	}
	_ = cc.ControlLocked(func() error { return cc.Fr.WriteRSTStream(id, code) })
}

// startTimer starts the keep-alive and idle checks (cl.mu held; cc not
// shared yet).
func (cc *conn) startTimer() {
	cl := cc.cl
	p := h2conn.KeepAlivePeriod(cl.sendPing, cl.pingTimeout, cl.idleTimeout)
	if p == 0 {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ErrLocked() != nil {
		return
	}
	cc.period = p
	cc.StartKeepAliveLocked(time.Now())
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
	if cc.ErrLocked() != nil {
		return
	}
	now := time.Now()
	if cc.PingTickLocked(now, cl.sendPing, cl.pingTimeout) {
		cc.failLocked(errPingTimeout)
		return
	}
	if len(cc.streams) == 0 && cc.reserved == 0 && cc.IdleForLocked(now, cl.idleTimeout) {
		cc.goAway = true
		cc.failLocked(errIdle)
		return
	}
	if cc.ErrLocked() == nil {
		cc.timer.Reset(cc.period)
	}
}
