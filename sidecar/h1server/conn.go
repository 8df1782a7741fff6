package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
	stateGone // hijacked or handed to the HTTP/2 server
)

// h2Preface is what an HTTP/2 client with prior knowledge sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// aLongTimeAgo is a read deadline in the past: it unblocks a pending Read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one accepted connection; serve runs its loop on one goroutine.
type conn struct {
	s       *Server
	rwc     net.Conn
	cr      connReader
	br      *bufio.Reader
	bw      *bufio.Writer
	pendBuf [2048]byte
	pend    []byte
	ctx     context.Context
	tls     *tls.ConnectionState
	// armHeaderTimeout is headerTimeout as a func value, made once.
	armHeaderTimeout func()
	remoteAddr       string
	// tmpl is where the request is parsed; each handler gets a copy
	// (WithContext), so one allocation makes the request.
	tmpl http.Request
	// hdr is the last response's header map, kept for the next one
	// (respHeader) once that response was written and its handler
	// returned.
	hdr http.Header
	// rh is Config.Handler when it is a Recycler. spare and reqMem are
	// the exchange and the request header memory of the last request
	// its handler gave back, cleared, for the next request.
	rh     Recycler
	spare  *exchange
	reqMem headerMem
	state  atomic.Int32

	// mu guards the client-disconnect watch (watch.go) and hijacking.
	mu         sync.Mutex
	cur        *exchange
	curCancel  context.CancelFunc // cancels cur's request context
	watch      *time.Timer
	watchOnEOF bool
	bgRunning  bool
	bgAborting bool
	bgDone     chan struct{}
	dead       bool
	hijacked   bool
}

// connReader is what the buffered reader reads from: the connection, after
// the byte a background read took, if any.
type connReader struct {
	c       *conn
	hasByte bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte && len(p) > 0 {
		p[0] = r.b[0]
		r.hasByte = false
		return 1, nil
	}
	return r.c.rwc.Read(p)
}

func (c *conn) serve() {
	s := c.s
	gone := false
	defer func() {
		if !gone {
			c.close()
		}
		s.untrack(c)
	}()
	if tc, ok := c.rwc.(*tls.Conn); ok {
		if d := s.Config.ReadHeaderTimeout; d > 0 {
			_ = tc.SetReadDeadline(time.Now().Add(d))
		}
		if err := tc.HandshakeContext(context.Background()); err != nil {
			return
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol == "h2" {
			gone = c.handOff(tc, nil)
			return
		}
		c.tls = &st
	}
	c.cr.c = c
	c.armHeaderTimeout = c.headerTimeout
	c.rh, _ = s.Config.Handler.(Recycler)
	c.br = s.getReader(&c.cr)
	c.pend = c.pendBuf[:0]
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			break
		}
		if first && c.tls == nil && s.h2c() {
			if b, err := c.br.Peek(1); err == nil && b[0] == 'P' {
				if b, err := c.br.Peek(len(h2Preface)); err == nil && string(b) == h2Preface {
					gone = c.handOff(&replayConn{Conn: c.rwc, r: c.br}, c.br)
					return
				}
			}
		}
		if first {
			c.ctx = s.connContext(c.rwc)
			c.bw = s.getWriter(c.rwc)
		}
		if !c.serveOne() {
			break
		}
	}
	if c.hijacked {
		gone = true
		return
	}
	s.putReader(c.br)
	if c.bw != nil {
		s.putWriter(c.bw)
	}
}

// close closes the connection (its writer was flushed) and stops the
// watch timer.
func (c *conn) close() {
	c.state.Store(stateClosed)
	c.mu.Lock()
	if c.watch != nil {
		c.watch.Stop()
	}
	c.mu.Unlock()
	_ = c.rwc.Close()
}

// handOff gives the connection to the HTTP/2 server; it reports whether
// it took it.
func (c *conn) handOff(nc net.Conn, br *bufio.Reader) bool {
	c.state.Store(stateGone)
	if h2 := c.s.HTTP2; h2 != nil {
		// Served here; the connection stays tracked (Shutdown waits for
		// it, Close closes it).
		h2.ServeConn(c.s.connContext(nc), nc, br)
		return true
	}
	c.s.fallback.deliver(nc)
	return true
}

// awaitRequest waits for the first byte of the next request within the
// idle timeout (the header timeout for the first one). False: the
// connection is done.
func (c *conn) awaitRequest(first bool) bool {
	s := c.s
	if c.br.Buffered() == 0 {
		d := s.Config.IdleTimeout
		if first || d <= 0 {
			d = s.Config.ReadHeaderTimeout
		}
		if d > 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(d))
		} else if !first {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	} else {
		// Pipelined: the last deadline may be long past.
		c.headerTimeout()
	}
	return c.state.CompareAndSwap(stateIdle, stateActive)
}

// headerTimeout arms ReadHeaderTimeout: readHead calls it when the head
// is not whole in the buffer (most heads arrive in one segment and never
// need it).
func (c *conn) headerTimeout() {
	if d := c.s.Config.ReadHeaderTimeout; d > 0 {
		_ = c.rwc.SetReadDeadline(time.Now().Add(d))
	}
}

// serveOne reads one request, runs the handler and finishes the
// response. False: close the connection.
func (c *conn) serveOne() bool {
	s := c.s
	head, err := readHead(c.br, s.maxHeaderBytes(), c.armHeaderTimeout)
	if err != nil {
		c.reject(err)
		return false
	}
	r := &c.tmpl
	var f framing
	// The exchange holds the parser's scratch: one allocation for both
	// (or none: the last request's, given back).
	ex := c.spare
	c.spare = nil
	if ex == nil {
		ex = &exchange{c: c, contentLength: -1}
	}
	hm := c.reqMem
	c.reqMem = headerMem{}
	if err := parseHead(head, r, &f, &ex.scratch, &hm); err != nil {
		c.reject(err)
		return false
	}
	ex.expectContinue = f.expectContinue
	ctx, cancel := context.WithCancel(c.ctx)
	r.TLS = c.tls
	r.RemoteAddr = c.remoteAddr
	noBody := false
	switch {
	case r.Method == http.MethodConnect:
		// The body is the tunnel: what the client sends after the head,
		// until it closes (for a handler that does not hijack).
		ex.body = body{ex: ex, br: c.br, remaining: math.MaxInt64, stream: true}
		r.Body = &ex.body
		r.ContentLength = -1
		_ = c.rwc.SetReadDeadline(time.Time{})
	case f.chunked || f.contentLength > 0:
		ex.body = body{ex: ex, br: c.br, remaining: max(f.contentLength, 0), chunked: f.chunked}
		r.Body = &ex.body
		// The body streams for as long as it takes.
		_ = c.rwc.SetReadDeadline(time.Time{})
	default:
		r.Body = http.NoBody
		ex.bodyDone.Store(true)
		noBody = true
	}
	// The handler's request lives in the exchange (WithContext's copy is
	// inlined and stays on the stack): one allocation for both.
	ex.req = *r.WithContext(ctx)
	req := &ex.req
	ex.header = c.respHeader()
	ex.isHead = req.Method == http.MethodHead

	c.startWatch(ex, cancel)
	panicked, done := c.runHandler(ex)
	c.stopWatch()
	defer cancel()
	if ex.hijacked {
		return false
	}
	if panicked {
		ex.done = true
		_ = c.bw.Flush()
		return false
	}
	keep := ex.finish()
	if err := c.bw.Flush(); err != nil || !keep {
		return false
	}
	// The handler returned and the response is written: its header map
	// serves the next response on this connection.
	c.hdr = ex.header
	if done && noBody {
		// The handler gave the request back (Recycler) and it had no
		// body (so nothing can still read one through the exchange):
		// the exchange, with the request, and the header map serve the
		// next request.
		c.recycle(ex, hm)
	}
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead || s.shuttingDown() {
		return false
	}
	c.state.Store(stateIdle)
	return true
}

// maxReusedHeader bounds the fields of a response header map that is
// cleared and reused for the next response (a larger one is dropped).
const maxReusedHeader = 32

// respHeader returns the header map for the next response: the last
// response's, cleared, when there is one.
func (c *conn) respHeader() http.Header {
	h := c.hdr
	c.hdr = nil
	if h == nil || len(h) > maxReusedHeader {
		return make(http.Header)
	}
	clear(h)
	return h
}

// recycle keeps ex and hm, cleared, for the connection's next request.
// Nothing of the old request stays reachable from them (its strings, its
// context), and a header map grown beyond maxReusedHeader fields is
// dropped.
func (c *conn) recycle(ex *exchange, hm headerMem) {
	*ex = exchange{c: c, contentLength: -1}
	c.spare = ex
	if len(hm.hdr) > maxReusedHeader {
		hm.hdr = nil
	}
	clear(hm.hdr)
	clear(hm.vals)
	c.reqMem = hm
}

// runHandler runs the handler; a panic closes the connection (logged
// unless it is http.ErrAbortHandler). done: a Recycler gave the request
// back.
func (c *conn) runHandler(ex *exchange) (panicked, done bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked, done = true, false
			if v != http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared as net/http does
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("h1server: panic serving %v: %v\n%s", c.remoteAddr, v, buf)
			}
		}
	}()
	if c.rh != nil {
		return false, c.rh.ServeRecycle(ex, &ex.req)
	}
	c.s.Config.Handler.ServeHTTP(ex, &ex.req)
	return false, false
}

// reject answers a request the server could not read: a status for a
// malformed or too large head, nothing when the client left or timed out.
func (c *conn) reject(err error) {
	var se *statusError
	if !errors.As(err, &se) {
		return
	}
	if c.bw == nil {
		c.bw = c.s.getWriter(c.rwc)
	}
	text := strconv.Itoa(se.code) + " " + http.StatusText(se.code)
	_, _ = c.bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + text + ": " + se.msg)
	_ = c.bw.Flush()
}

// hijack hands the connection to the handler: no watch, no deadline, and
// the byte a background read took back in the reader.
func (c *conn) hijack() {
	c.mu.Lock()
	c.hijacked = true
	c.cur, c.curCancel = nil, nil
	if c.watch != nil {
		c.watch.Stop()
	}
	c.mu.Unlock()
	c.abortBackgroundRead()
	if c.cr.hasByte {
		_, _ = c.br.Peek(c.br.Buffered() + 1)
	}
	_ = c.rwc.SetDeadline(time.Time{})
	c.state.Store(stateGone)
	c.s.untrack(c)
}

// replayConn is a plaintext connection whose first bytes were read into r
// (the HTTP/2 preface): reads come from r, which goes on to the conn.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn returns the connection (capture.FromConn unwraps it).
func (c *replayConn) NetConn() net.Conn { return c.Conn }
