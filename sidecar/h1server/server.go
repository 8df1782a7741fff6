package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchDelay is how long a handler runs before the server starts
// watching its connection for the client going away (Server.WatchDelay).
const DefaultWatchDelay = 5 * time.Millisecond

// Recycler is a Config.Handler that can give a request back to the
// server when it is done with it, so the connection serves its next
// request with the same memory: the *http.Request, its URL, its header
// map and the slice of the header values, and the response writer (one
// exchange and two maps' worth of allocations per request otherwise).
//
// ServeRecycle serves w and r as ServeHTTP does and returns done. done
// true promises that neither the handler nor anything it started or
// handed r to (a transport, a goroutine, a span, a retry) holds or will
// use, once ServeRecycle returned, r itself, r.URL, r.Header (the map or
// any of its value slices) or w. What stays valid whatever done says:
// the strings of the request (its head is not reused), r.Context(), and
// values the handler put in r.Header. A request with a body is never
// recycled, so done does not speak for r.Body. When unsure, return
// false: the request is then left to the garbage collector, as with
// ServeHTTP. HTTP/2 requests (handed to HTTP2 or Config) are served with
// ServeHTTP.
type Recycler interface {
	http.Handler
	ServeRecycle(w http.ResponseWriter, r *http.Request) (done bool)
}

// Server serves HTTP/1.x connections itself and hands every other one
// (TLS with ALPN "h2", the h2c prior-knowledge preface) to Config.
type Server struct {
	// Config gives Handler, ConnContext, ReadHeaderTimeout, IdleTimeout,
	// MaxHeaderBytes and ErrorLog, and serves HTTP/2 connections as it
	// is configured (Protocols, HTTP2); its other HTTP/1 settings are not
	// used. Do not change it after Serve.
	Config *http.Server
	// WatchDelay (default DefaultWatchDelay): see watch.go.
	WatchDelay time.Duration
	// HTTP2, when set, serves the HTTP/2 connections (sidecar/h2server)
	// instead of Config, on the connection's goroutine. Set it before
	// Serve.
	HTTP2 ConnServer

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	shutdown  atomic.Bool

	fallbackOnce sync.Once
	fallback     *memListener
	fallbackWG   sync.WaitGroup

	readers, writers sync.Pool
	dates            atomic.Pointer[dateStamp]
}

// ConnServer serves HTTP/2 connections handed to it.
type ConnServer interface {
	// ServeConn serves nc until it ends and closes it; ctx is the
	// connection's context (Config.ConnContext applied); br, when not
	// nil, reads nc and holds what was read of it already (the h2c
	// preface).
	ServeConn(ctx context.Context, nc net.Conn, br *bufio.Reader)
	// Shutdown ends the connections gracefully (GOAWAY), until ctx ends.
	Shutdown(ctx context.Context) error
	// Close closes them.
	Close() error
}

// New returns a server for cfg (see Server.Config).
func New(cfg *http.Server) *Server { return &Server{Config: cfg} }

// Serve accepts connections on ln, each served on its own goroutine,
// until Shutdown or Close (http.ErrServerClosed) or an accept error; it
// closes ln when it returns, as net/http's Serve does.
func (s *Server) Serve(ln net.Listener) error {
	defer func() { _ = ln.Close() }()
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.startFallback(ln.Addr())
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &conn{s: s, rwc: rw, remoteAddr: rw.RemoteAddr().String()}
		if !s.track(c) {
			_ = rw.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// ServeConn serves rw on the calling goroutine until the connection ends,
// and closes it, as Serve does each connection it accepts: a listener that
// has a goroutine per connection already (the inbound's TLS-sniffing one)
// serves it there instead of handing it to Serve's loop, which would
// start a second goroutine and grow a second stack. It reports false, and
// closes rw at once, when the server was shut down or closed; Shutdown
// waits for the connections it serves, Close closes them.
func (s *Server) ServeConn(rw net.Conn) bool {
	if s.shuttingDown() {
		_ = rw.Close()
		return false
	}
	s.startFallback(rw.LocalAddr())
	c := &conn{s: s, rwc: rw, remoteAddr: rw.RemoteAddr().String()}
	if !s.track(c) {
		_ = rw.Close()
		return false
	}
	c.serve()
	return true
}

// Shutdown stops accepting, closes idle connections, and waits for the
// active ones to finish their response (they close after it) and for the
// HTTP/2 server's Shutdown, until ctx ends (its error).
func (s *Server) Shutdown(ctx context.Context) error {
	s.setShutdown()
	h2 := make(chan error, 1)
	go func() {
		if s.HTTP2 != nil {
			h2 <- s.HTTP2.Shutdown(ctx)
			return
		}
		h2 <- s.Config.Shutdown(ctx)
	}()
	tick := time.Millisecond
	t := time.NewTimer(tick)
	defer t.Stop()
	for !s.closeIdle() {
		select {
		case <-ctx.Done():
			// Config.Shutdown returns as soon as ctx ended.
			if err := <-h2; err != nil && !errors.Is(err, ctx.Err()) {
				s.logf("h1server: HTTP/2 shutdown: %v", err)
			}
			return ctx.Err()
		case <-t.C:
			tick = min(2*tick, 500*time.Millisecond)
			t.Reset(tick)
		}
	}
	err := <-h2
	s.fallbackWG.Wait()
	return err
}

// Close closes the listeners and every connection at once (hijacked ones
// are the handler's).
func (s *Server) Close() error {
	s.setShutdown()
	err := s.Config.Close()
	if s.HTTP2 != nil {
		err = s.HTTP2.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.rwc.Close()
	}
	s.mu.Unlock()
	s.fallbackWG.Wait()
	return err
}

// setShutdown refuses new listeners and connections and closes the
// listeners (under mu, so a Serve starting now sees the flag or is closed).
func (s *Server) setShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	for ln := range s.listeners {
		_ = ln.Close()
	}
}

// closeIdle closes the idle connections; true when none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) shuttingDown() bool { return s.shutdown.Load() }

// startFallback starts Config serving the in-memory listener HTTP/2
// connections are handed to (once; Shutdown and Close end it).
func (s *Server) startFallback(addr net.Addr) {
	if s.HTTP2 != nil {
		return
	}
	s.fallbackOnce.Do(func() {
		s.fallback = &memListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
		s.fallbackWG.Add(1)
		go func() {
			defer s.fallbackWG.Done()
			if err := s.Config.Serve(s.fallback); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.logf("h1server: HTTP/2 server stopped: %v", err)
			}
			s.fallback.Close()
		}()
	})
}

// h2c reports whether Config serves HTTP/2 with prior knowledge.
func (s *Server) h2c() bool {
	p := s.Config.Protocols
	return p != nil && p.UnencryptedHTTP2()
}

func (s *Server) connContext(rw net.Conn) context.Context {
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, rw.LocalAddr())
	if cc := s.Config.ConnContext; cc != nil {
		ctx = cc(ctx, rw)
	}
	return ctx
}

func (s *Server) maxHeaderBytes() int {
	n := s.Config.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return n
}

func (s *Server) watchDelay() time.Duration {
	if s.WatchDelay > 0 {
		return s.WatchDelay
	}
	return DefaultWatchDelay
}

func (s *Server) logf(format string, args ...any) {
	if l := s.Config.ErrorLog; l != nil {
		l.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

const bufSize = 4 << 10

func (s *Server) getReader(r io.Reader) *bufio.Reader {
	if v, ok := s.readers.Get().(*bufio.Reader); ok {
		v.Reset(r)
		return v
	}
	return bufio.NewReaderSize(r, bufSize)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

func (s *Server) getWriter(w io.Writer) *bufio.Writer {
	if v, ok := s.writers.Get().(*bufio.Writer); ok {
		v.Reset(w)
		return v
	}
	return bufio.NewWriterSize(w, bufSize)
}

func (s *Server) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	s.writers.Put(bw)
}

// dateStamp is the Date header value of one second.
type dateStamp struct {
	sec int64
	s   string
}

// date is the Date header value, formatted once a second.
func (s *Server) date() string {
	now := time.Now()
	sec := now.Unix()
	if d := s.dates.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateStamp{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	s.dates.Store(d)
	return d.s
}

// memListener is the in-memory listener Config serves HTTP/2 on.
type memListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// deliver hands c to the HTTP/2 server, or closes it when that stopped.
func (l *memListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}
