package h2server

import (
	"bufio"
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Defaults of the Server's zero fields.
const (
	DefaultMaxConcurrentStreams = 250
	DefaultStreamWindow         = 1 << 20
	DefaultConnWindow           = 1 << 20
	// DefaultWriteTimeout bounds each write to a connection: a peer that
	// does not take a batch of frames (at most about 64 KiB beyond the
	// control frames) within it reads too slowly, or not at all.
	DefaultWriteTimeout = 30 * time.Second
)

// Server serves HTTP/2 connections handed to ServeConn (h1server hands
// it those that negotiated "h2" over TLS and those that opened with the
// h2c prior-knowledge preface).
type Server struct {
	// Handler serves every request; it is given an http.ResponseWriter that
	// also implements http.Flusher and EnableFullDuplex.
	Handler http.Handler
	// MaxConcurrentStreams is advertised in SETTINGS; it also bounds the
	// handlers running at once (default DefaultMaxConcurrentStreams).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's decoded header list
	// (SETTINGS_MAX_HEADER_LIST_SIZE; default http.DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// StreamWindow and ConnWindow are the receive windows (defaults
	// DefaultStreamWindow, DefaultConnWindow).
	StreamWindow, ConnWindow int32
	// ReadHeaderTimeout bounds the wait for the client preface and its
	// SETTINGS (0: none).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection with no stream for that long (0:
	// never).
	IdleTimeout time.Duration
	// SendPingTimeout sends a PING after that long without a frame read;
	// PingTimeout closes the connection when its ACK does not come within
	// it (default 15 s). 0: no PINGs.
	SendPingTimeout, PingTimeout time.Duration
	// WriteTimeout bounds each write to the connection: a write that the
	// peer does not take within it (it reads too slowly, or nothing) fails
	// the connection. It applies to a pending write, not to a stream's
	// life: streams that send nothing (an idle gRPC stream, a tunnel) are
	// not bounded. Unlike net/http's WriteByteTimeout, a peer that reads a
	// little at a time does not extend it. Default DefaultWriteTimeout; a
	// negative value: no bound.
	WriteTimeout time.Duration
	// ErrorLog (nil: the log package's logger).
	ErrorLog *log.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	wg       sync.WaitGroup

	readers sync.Pool
	dates   dateCache
}

// ServeConn serves the HTTP/2 connection nc until it ends; it closes nc.
// ctx is the connection's context (requests' contexts derive from it). br,
// when not nil, reads nc and may hold bytes already read from it (the h2c
// preface); nc is a *tls.Conn, after its handshake, for HTTP/2 over TLS.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, br *bufio.Reader) {
	c := s.newConn(ctx, nc, br)
	if !s.track(c) {
		_ = nc.Close()
		return
	}
	defer s.untrack(c)
	c.serve() //nolint:contextcheck // requests derive from ctx, kept in the conn
}

// Shutdown sends GOAWAY on every connection, refuses new ones, and waits
// until each has finished its streams and closed, or until ctx ends (its
// error; the connections left are not closed: call Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	// GOAWAY goes on each connection on a goroutine of its own: writing it
	// waits for the socket, which a peer that reads nothing keeps full, and
	// that must hold up neither the other connections' GOAWAY nor the
	// return when ctx ends. Each ends when its GOAWAY was written or its
	// connection closed (Close).
	var sending sync.WaitGroup
	for _, c := range conns {
		sending.Go(func() { c.goAway(http2.ErrCodeNo, true) })
	}
	done := make(chan struct{})
	go func() {
		sending.Wait()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams > 0 {
		return s.MaxConcurrentStreams
	}
	return DefaultMaxConcurrentStreams
}

func (s *Server) maxHeaderBytes() uint32 {
	if s.MaxHeaderBytes > 0 {
		return uint32(min(s.MaxHeaderBytes, 1<<30)) //nolint:gosec // bounded above
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) streamWindow() int32 {
	if s.StreamWindow > 0 {
		return s.StreamWindow
	}
	return DefaultStreamWindow
}

func (s *Server) connWindow() int32 {
	if s.ConnWindow > 0 {
		return s.ConnWindow
	}
	return DefaultConnWindow
}

func (s *Server) pingTimeout() time.Duration {
	if s.PingTimeout > 0 {
		return s.PingTimeout
	}
	return 15 * time.Second
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout != 0 {
		return s.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (s *Server) logf(format string, args ...any) {
	if l := s.ErrorLog; l != nil {
		l.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

const readBufSize = 8 << 10

func (s *Server) getReader(nc net.Conn) *bufio.Reader {
	if v, ok := s.readers.Get().(*bufio.Reader); ok {
		v.Reset(nc)
		return v
	}
	return bufio.NewReaderSize(nc, readBufSize)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

// tlsState is the connection state of a TLS connection, nil otherwise.
func tlsState(nc net.Conn) *tls.ConnectionState {
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// dateCache formats the Date header once a second.
type dateCache struct {
	mu  sync.Mutex
	sec int64
	s   string
}

func (d *dateCache) get() string {
	now := time.Now()
	sec := now.Unix()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sec != sec {
		d.sec, d.s = sec, now.UTC().Format(http.TimeFormat)
	}
	return d.s
}

// FromConfig returns a server configured as cfg configures net/http's
// HTTP/2 server: its Handler, MaxHeaderBytes, ReadHeaderTimeout,
// IdleTimeout, ErrorLog and HTTP2's MaxConcurrentStreams,
// MaxReceiveBufferPerStream / PerConnection, SendPingTimeout, PingTimeout
// and WriteByteTimeout (as WriteTimeout). http.Server's WriteTimeout is
// not taken: net/http applies it to a stream's life, which would end
// long-lived streams.
func FromConfig(cfg *http.Server) *Server {
	s := &Server{
		Handler:           cfg.Handler,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          cfg.ErrorLog,
	}
	if h := cfg.HTTP2; h != nil {
		s.MaxConcurrentStreams = uint32(max(0, min(h.MaxConcurrentStreams, 1<<31-1))) //nolint:gosec // bounded
		s.StreamWindow = int32(max(0, min(h.MaxReceiveBufferPerStream, 1<<31-1)))     //nolint:gosec // bounded
		s.ConnWindow = int32(max(0, min(h.MaxReceiveBufferPerConnection, 1<<31-1)))   //nolint:gosec // bounded
		s.SendPingTimeout = h.SendPingTimeout
		s.PingTimeout = h.PingTimeout
		s.WriteTimeout = h.WriteByteTimeout
	}
	if s.Handler == nil {
		s.Handler = http.DefaultServeMux
	}
	return s
}
