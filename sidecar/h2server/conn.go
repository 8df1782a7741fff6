package h2server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
)

const (
	// preface is the client preface.
	preface = http2.ClientPreface
	// maxQueuedControlFrames closes a connection whose peer makes it
	// queue more control frames (PING and SETTINGS ACKs, RST_STREAM,
	// WINDOW_UPDATE) than that without reading them: ping, settings and
	// reset floods (CVE-2019-9512, CVE-2019-9515, CVE-2019-9514), as
	// net/http's maxQueuedControlFrames.
	maxQueuedControlFrames = 10000
	// initialWindow is HTTP/2's initial flow-control window.
	initialWindow = h2conn.InitialWindow
	// maxFrameSize is the frame size the server reads (the default; it
	// does not advertise another).
	maxFrameSize = h2conn.MinFrameSize
	// goAwayTimeout is how long a peer has to take the GOAWAY of a
	// connection that ends (idle, or a connection error) before it is
	// closed regardless (net/http's goAwayTimeout).
	goAwayTimeout = time.Second
)

var (
	errStreamReset = errors.New("h2server: stream reset")
	errConnClosed  = errors.New("h2server: connection closed")
)

// conn is one HTTP/2 connection. Its serve goroutine is the read loop;
// handlers run on goroutines of their own. Frames are written into the
// core's buffer under mu by whoever produces them and written to the
// socket by one flusher at a time (FlushLocked): everything queued while
// it wrote goes in its next write.
type conn struct {
	h2conn.Core // under mu: its windows and writer
	s           *Server
	nc          net.Conn
	br          *bufio.Reader
	ownBR       bool
	ctx         context.Context
	cancel      context.CancelFunc
	remoteAddr  string
	tls         *tls.ConnectionState

	mu   sync.Mutex
	cond sync.Cond // L is &mu: windows opened, room to write, state changed

	// Streams (under mu).
	streams    h2conn.Streams[*stream]
	maxID      uint32
	running    int
	queue      []*stream
	started    bool // the server preface was written
	goAwayTx   bool // shutting down: no new stream
	goAwaySent bool // GOAWAY written
	goAwayRx   bool // GOAWAY received
	closed     bool
	// resetIDs are the last streams the server reset.
	resetIDs  [16]uint32
	resetNext uint32

	// Keep-alive (under mu).
	timer  *time.Timer
	period time.Duration
}

var _ h2conn.Side = (*conn)(nil)

func (s *Server) newConn(ctx context.Context, nc net.Conn, br *bufio.Reader) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		br:         br,
		remoteAddr: nc.RemoteAddr().String(),
		tls:        tlsState(nc),
		streams:    h2conn.Streams[*stream]{},
	}
	c.cond.L = &c.mu
	if c.br == nil {
		c.br = s.getReader(nc)
		c.ownBR = true
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.Init(nc, c.br, &c.mu, &c.cond, c, h2conn.Config{
		Name:              "h2server",
		WriteTimeout:      s.writeTimeout(),
		MaxControlFrames:  maxQueuedControlFrames,
		MaxHeaderListSize: s.maxHeaderBytes(),
		StreamWindow:      s.streamWindow(),
		ConnWindow:        s.connWindow(),
		ErrStreamReset:    errStreamReset,
	})
	return c
}

// serve is the read loop.
func (c *conn) serve() {
	defer c.close()
	if !c.handshake() {
		return
	}
	c.connError(c.ReadFrames(c.br, c))
}

// HandleFrame handles a frame read (h2conn.FrameHandler).
func (c *conn) HandleFrame(f http2.Frame) error { return c.process(f) }

// StreamErrorLocked resets the stream of se (h2conn.FrameHandler).
func (c *conn) StreamErrorLocked(se http2.StreamError) {
	c.resetLocked(c.streams[se.StreamID], se.StreamID, se.Code)
}

// FrameDone hands what was queued to a writer once nothing more is
// buffered to read (h2conn.FrameHandler): the read loop never waits for
// the peer to read (a peer that reads nothing while it sends PINGs is
// dropped once the queue is full, not obeyed).
func (c *conn) FrameDone(drained bool) {
	if drained {
		c.mu.Lock()
		c.FlushSoonLocked()
		c.mu.Unlock()
	}
}

// connError ends the connection after a read or protocol error: a
// protocol error gets GOAWAY, then what the peer still sends is read and
// dropped for up to a second, so that the close does not reset the
// connection before the peer read the GOAWAY.
func (c *conn) connError(err error) {
	code, ok := h2conn.GoAwayCode(err)
	if !ok {
		return // the connection failed or the peer closed it
	}
	c.mu.Lock()
	if c.started && !c.closed {
		c.goAwayTx, c.goAwaySent = true, true
		_ = c.ControlLocked(func() error { return c.Fr.WriteGoAway(c.maxID, code, nil) })
		c.SetWriteByLocked(time.Now().Add(goAwayTimeout))
		c.DrainLocked()
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
	_ = c.Fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: s.maxStreams()},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(s.streamWindow())}, //nolint:gosec // positive
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.maxHeaderBytes()},
	)
	if w := int64(s.connWindow()); w > initialWindow {
		_ = c.Fr.WriteWindowUpdate(0, uint32(w-initialWindow)) //nolint:gosec // bounded by int32
		c.Inflow = w
	}
	c.started = true
	c.FlushSoonLocked()
	c.mu.Unlock()
	f, err := c.Fr.ReadFrame()
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
	c.FlushSoonLocked() // its ACK
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
	}
	// SETTINGS, WINDOW_UPDATE, PING; unknown types ignored. CONTINUATION
	// never comes here: h2head merges it into its HEADERS and the Framer
	// rejects any other (PROTOCOL_ERROR).
	return c.Process(f)
}

// StreamLocked is open stream id (h2conn.Side).
func (c *conn) StreamLocked(id uint32) (*h2conn.Stream, bool) {
	return c.streams.Lookup(id), id <= c.maxID
}

// EachStreamLocked calls f for each open stream (h2conn.Side).
func (c *conn) EachStreamLocked(f func(*h2conn.Stream) error) error {
	return c.streams.Each(f)
}

// FailLocked ends the connection after a write error (h2conn.Side).
func (c *conn) FailLocked(err error) { c.failLocked(err) }

// WriteStartLocked (h2conn.Side): nothing to note.
func (c *conn) WriteStartLocked() {}

// ClosedLocked forgets s, which ended both ways (h2conn.Side).
func (c *conn) ClosedLocked(s *h2conn.Stream) {
	if c.streams.Forget(s) {
		c.noteIdleLocked()
	}
}

func (c *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.TakeDataLocked(f); err != nil {
		return err
	}
	st := c.streams[id]
	if st == nil || st.RemoteDone {
		if st == nil && id > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.CreditLocked(nil, int64(f.Length))
		if st == nil && c.wasReset(id) {
			return nil // sent before the peer read our RST_STREAM
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	return c.DataLocked(&st.Stream, &st.body.Body, f)
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
		if st.RemoteDone {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		// Trailers.
		if !f.StreamEnded() || f.Truncated || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		if st.DeclLen >= 0 && st.GotLen != st.DeclLen {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		tr, ok := trailerOf(f)
		if !ok {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.body.end(tr)
		c.RemoteDoneLocked(&st.Stream)
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
	c.IdleSince = time.Time{}
	if f.StreamEnded() {
		st.RemoteDone = true
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

func (c *conn) noteIdleLocked() {
	if len(c.streams) == 0 && c.running == 0 {
		c.IdleSince = time.Now()
		if c.goAwayTx || c.goAwayRx {
			// Drained: end the connection (the read loop's read fails).
			c.DrainLocked()
			_ = c.nc.Close()
		}
	}
}

// abortLocked ends st at once (RST_STREAM sent or received): its context
// is cancelled, its body fails (what was not read is dropped), its writes
// fail.
func (c *conn) abortLocked(st *stream) {
	st.Reset = true
	st.RemoteDone = true
	st.LocalDone = true
	if c.streams.Forget(&st.Stream) {
		c.noteIdleLocked()
	}
	st.cancel()
	// What the handler did not read goes back to the connection window
	// now: a queued stream's handler never runs to close its body.
	if n := st.body.abort(errStreamReset); n > 0 {
		c.CreditLocked(&st.Stream, int64(n))
	}
	c.cond.Broadcast()
}

// resetLocked sends RST_STREAM for id (st may be nil) and aborts st.
func (c *conn) resetLocked(st *stream, id uint32, code http2.ErrCode) {
	if st != nil {
		if st.Reset {
			return
		}
		c.abortLocked(st)
	}
	c.resetIDs[c.resetNext%uint32(len(c.resetIDs))] = id
	c.resetNext++
	_ = c.ControlLocked(func() error { return c.Fr.WriteRSTStream(id, code) })
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

// failLocked ends the connection after a write error.
func (c *conn) failLocked(err error) {
	c.StopLocked(err)
	_ = c.nc.Close()
	c.cond.Broadcast()
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
		_ = c.ControlLocked(func() error { return c.Fr.WriteGoAway(c.maxID, code, nil) })
	}
	c.DrainLocked()
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
	c.StopLocked(errConnClosed)
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
	c.WaitFlushers()
	if c.ownBR {
		c.s.putReader(c.br)
	}
}

// startTimer starts the keep-alive and idle checks.
func (c *conn) startTimer() {
	s := c.s
	p := h2conn.KeepAlivePeriod(s.SendPingTimeout, s.pingTimeout(), s.IdleTimeout)
	if p == 0 {
		return
	}
	c.mu.Lock()
	c.period = p
	c.IdleSince = time.Now()
	c.StartKeepAliveLocked(c.IdleSince)
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
	if c.PingTickLocked(now, s.SendPingTimeout, s.pingTimeout()) {
		c.failLocked(errors.New("h2server: PING timed out"))
		return
	}
	if len(c.streams) == 0 && c.running == 0 && c.IdleForLocked(now, s.IdleTimeout) {
		c.goAwayTx, c.goAwaySent = true, true
		_ = c.ControlLocked(func() error { return c.Fr.WriteGoAway(c.maxID, http2.ErrCodeNo, nil) })
		// The deadline applies to a write in progress too: whoever
		// writes, the timer does not wait beyond it.
		c.SetWriteByLocked(now.Add(goAwayTimeout))
		c.DrainLocked()
		_ = c.nc.Close()
		return
	}
	if !c.closed {
		c.timer.Reset(c.period)
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
			if !next.Reset {
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
	return c.ControlLocked(func() error {
		c.Hbuf.B = c.Hbuf.B[:0]
		_ = c.Henc.WriteField(hpack.HeaderField{Name: ":status", Value: "431"})
		if err := c.WriteBlockLocked(id, true); err != nil {
			return err
		}
		if !ended {
			return c.Fr.WriteRSTStream(id, http2.ErrCodeNo)
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
	withBody := n <= c.SendWin && n <= c.PeerWindow && n <= int64(c.PeerMaxFrame)
	err := c.ControlLocked(func() error {
		c.Hbuf.B = c.Hbuf.B[:0]
		_ = c.Henc.WriteField(hpack.HeaderField{Name: ":status", Value: "400"})
		_ = c.Henc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain; charset=utf-8"})
		_ = c.Henc.WriteField(hpack.HeaderField{Name: "x-content-type-options", Value: "nosniff"})
		if !withBody {
			return c.WriteBlockLocked(id, true)
		}
		_ = c.Henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		if err := c.WriteBlockLocked(id, false); err != nil {
			return err
		}
		c.SendWin -= n
		return c.Fr.WriteData(id, true, []byte(body))
	})
	if err != nil {
		return err
	}
	c.resetLocked(nil, id, http2.ErrCodeProtocol)
	return nil
}
