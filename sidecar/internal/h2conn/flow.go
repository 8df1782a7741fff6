package h2conn

import (
	"io"
	"time"

	"golang.org/x/net/http2"
)

// SettingsLocked applies the peer's SETTINGS that the core keeps (the
// header table size, the initial window, which changes every open
// stream's send window, the frame size) and queues the ACK; the side
// applies its own settings after. An ACK is ignored.
func (c *Core) SettingsLocked(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.Henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.PeerWindow
			c.PeerWindow = int64(s.Val)
			return c.side.EachStreamLocked(func(st *Stream) error {
				st.SendWin += delta
				if st.SendWin > MaxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				return nil
			})
		case http2.SettingMaxFrameSize:
			c.PeerMaxFrame = s.Val
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.cond.Broadcast()
	return c.ControlLocked(c.Fr.WriteSettingsAck)
}

// WindowUpdateLocked opens the connection's or a stream's send window.
func (c *Core) WindowUpdateLocked(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.SendWin += inc
		if c.SendWin > MaxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.cond.Broadcast()
		return nil
	}
	st, opened := c.side.StreamLocked(f.StreamID)
	if st == nil {
		if !opened {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	st.SendWin += inc
	if st.SendWin > MaxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.cond.Broadcast()
	return nil
}

// PingLocked answers a PING, or takes the ACK of the keep-alive's.
func (c *Core) PingLocked(f *http2.PingFrame) error {
	if f.IsAck() {
		c.pingOut = false
		return nil
	}
	// The Framer rejects a PING on a stream (PROTOCOL_ERROR).
	return c.ControlLocked(func() error { return c.Fr.WritePing(true, f.Data) })
}

// TakeDataLocked takes a DATA frame (its padding included) from the
// connection's receive window: a FLOW_CONTROL connection error beyond
// it.
func (c *Core) TakeDataLocked(f *http2.DataFrame) error {
	n := int64(f.Length)
	if n > c.Inflow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.Inflow -= n
	return nil
}

// StreamDataLocked takes a DATA frame that TakeDataLocked took from the
// connection's window from st's (the padding goes back at once) and
// checks it against st's content-length: a stream error (the bytes
// given back to the connection window) beyond either.
func (c *Core) StreamDataLocked(st *Stream, f *http2.DataFrame) error {
	n := int64(f.Length)
	data := int64(len(f.Data()))
	if n > st.Inflow {
		c.CreditLocked(nil, n)
		return http2.StreamError{StreamID: st.ID, Code: http2.ErrCodeFlowControl}
	}
	st.Inflow -= n
	if pad := n - data; pad > 0 {
		c.CreditLocked(st, pad)
	}
	st.GotLen += data
	if st.DeclLen >= 0 && (st.GotLen > st.DeclLen || f.StreamEnded() && st.GotLen != st.DeclLen) {
		c.CreditLocked(nil, data)
		return http2.StreamError{StreamID: st.ID, Code: http2.ErrCodeProtocol}
	}
	return nil
}

// DataLocked takes a DATA frame of open stream st, whose received body
// is b: from st's window and against its content-length
// (StreamDataLocked), its payload into b (given back to the windows at
// once when the reader closed b) and, with END_STREAM, b's end (io.EOF)
// and st's remote side's (RemoteDoneLocked).
func (c *Core) DataLocked(st *Stream, b *Body, f *http2.DataFrame) error {
	if err := c.StreamDataLocked(st, f); err != nil {
		return err
	}
	if data := f.Data(); len(data) > 0 && !b.Add(data) {
		c.CreditLocked(st, int64(len(data)))
	}
	if f.StreamEnded() {
		b.Mu.Lock()
		b.EndLocked(io.EOF)
		b.Mu.Unlock()
		c.RemoteDoneLocked(st)
	}
	return nil
}

// CreditLocked returns n bytes (consumed by the reader, or dropped) to
// the peer's connection window and, while the peer may still send on
// it, st's (nil: the connection's only); WINDOW_UPDATE goes when a
// quarter of a window is due: the peer is never blocked on what was
// consumed, since what it may send plus what is buffered plus what is
// due is the window.
func (c *Core) CreditLocked(st *Stream, n int64) {
	if n <= 0 {
		return
	}
	c.Unacked += n
	if w := int64(c.cfg.ConnWindow); c.Unacked >= w/4 {
		inc := c.Unacked
		if c.ControlLocked(func() error { return c.Fr.WriteWindowUpdate(0, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			c.Inflow += inc
			c.Unacked = 0
		}
	}
	if st == nil || st.RemoteDone {
		return
	}
	st.Unacked += n
	if w := int64(c.cfg.StreamWindow); st.Unacked >= w/4 {
		inc := st.Unacked
		if c.ControlLocked(func() error { return c.Fr.WriteWindowUpdate(st.ID, uint32(inc)) }) == nil { //nolint:gosec // bounded by the window
			st.Inflow += inc
			st.Unacked = 0
		}
	}
}

// Credit returns n bytes read (or dropped) from st's body and writes
// the WINDOW_UPDATEs it makes (a flush for st).
func (c *Core) Credit(st *Stream, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	before := len(c.buf)
	c.CreditLocked(st, int64(n))
	if len(c.buf) != before {
		c.FlushForLocked(st)
	}
	c.mu.Unlock()
}

// KeepAlivePeriod is how often the keep-alive timer checks a
// connection that PINGs after sendPing without a frame read (0: never)
// whose ACK must come within pingTimeout, and closes after idle without
// a stream (0: never); 0 when it needs no timer.
func KeepAlivePeriod(sendPing, pingTimeout, idle time.Duration) time.Duration {
	var p time.Duration
	for _, d := range []time.Duration{sendPing, idle} {
		if d > 0 && (p == 0 || d < p) {
			p = d
		}
	}
	if p > 0 && sendPing > 0 {
		p = min(p, pingTimeout)
	}
	return p
}

// StartKeepAliveLocked: the keep-alive timer starts at now.
func (c *Core) StartKeepAliveLocked(now time.Time) { c.lastFrameAt = now }

// PingTickLocked is the keep-alive timer's PING at now: true when the
// PING sent is unanswered after pingTimeout (the side fails the
// connection); a PING after sendPing without a frame read, written
// within pingTimeout (FlushWithinLocked).
func (c *Core) PingTickLocked(now time.Time, sendPing, pingTimeout time.Duration) (timedOut bool) {
	if n := c.frames.Load(); n != c.lastFrames {
		c.lastFrames, c.lastFrameAt = n, now
	}
	if sendPing <= 0 {
		return false
	}
	switch {
	case c.pingOut && now.Sub(c.pingAt) >= pingTimeout:
		return true
	case !c.pingOut && now.Sub(c.lastFrameAt) >= sendPing:
		c.pingOut, c.pingAt = true, now
		_ = c.ControlLocked(func() error { return c.Fr.WritePing(false, [8]byte{'w', 'e', 'f', 't'}) })
		c.FlushWithinLocked(pingTimeout)
	}
	return false
}

// IdleForLocked reports whether the connection, idle since IdleSince,
// has been so for d (0: never) at now; the side says whether it
// carries no stream.
func (c *Core) IdleForLocked(now time.Time, d time.Duration) bool {
	return d > 0 && !c.IdleSince.IsZero() && now.Sub(c.IdleSince) >= d
}

// Process handles a frame read that the core knows, under the mutex:
// SETTINGS, WINDOW_UPDATE, PING; any other is ignored (PRIORITY,
// unknown frame types). The side's read loop hands it what it does not
// handle itself.
func (c *Core) Process(f http2.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.SettingsLocked(f)
	case *http2.WindowUpdateFrame:
		return c.WindowUpdateLocked(f)
	case *http2.PingFrame:
		return c.PingLocked(f)
	}
	return nil
}
