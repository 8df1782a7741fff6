package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/h1server"
	"github.com/weftmesh/weft/sidecar/h2server"
	"github.com/weftmesh/weft/sidecar/internal/rawtcp"
	"github.com/weftmesh/weft/sidecar/router"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// gatedServer asks its listener for a connection only once released.
type gatedServer struct {
	release chan struct{}
	ln      chan net.Listener
}

func (s *gatedServer) Serve(ln net.Listener) error {
	s.ln <- ln
	<-s.release
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}

func (s *gatedServer) Shutdown(context.Context) error { return s.Close() }
func (s *gatedServer) Close() error                   { return (<-s.ln).Close() }

// TestListenerManagerStarted: started (what TrimAfterStart waits for)
// closes once the first table is applied and the server of each listener
// it bound, and the inbound's wrapping listener, asked for a connection;
// not before, and only once.
func TestListenerManagerStarted(t *testing.T) {
	var tables atomic.Pointer[router.Table]
	ctx, cancel := context.WithCancel(t.Context())
	srv := &gatedServer{release: make(chan struct{}), ln: make(chan net.Listener, 1)}
	// The wrapping listener (the inbound's sniffer) asks its socket from
	// a goroutine of its own: started waits for both.
	var inner atomic.Bool
	wrapReleased := make(chan struct{})
	m := newListenerManager(slog.New(slog.DiscardHandler), 0, &tables, map[string]serverSpec{
		mesh.ListenerInbound: {
			newServer: func() server { return srv },
			wrap: func(ln net.Listener, _ server) net.Listener {
				go func() {
					<-wrapReleased
					inner.Store(true)
					if c, err := ln.Accept(); err == nil {
						c.Close()
					}
				}()
				return ln
			},
		},
	})
	var released, wrapDone bool
	defer func() {
		// Whatever failed, the server and the wrapper's goroutine end.
		if !released {
			close(srv.release)
		}
		if !wrapDone {
			close(wrapReleased)
		}
		if s := m.running[mesh.ListenerInbound]; s != nil {
			m.stop(mesh.ListenerInbound, s)
		}
		cancel()
		m.wg.Wait()
	}()
	if !m.apply(ctx, nil) || closed(m.started) {
		t.Fatal("started before any table was applied")
	}
	table := &router.Table{Inbound: &router.Listener{Address: "127.0.0.1:0"}}
	if !m.apply(ctx, table) {
		t.Fatal("first table not applied")
	}
	ln := <-srv.ln
	srv.ln <- ln
	if closed(m.started) {
		t.Fatal("started before the server asked for a connection")
	}
	close(srv.release)
	released = true
	// The server is in Accept; the wrapping listener's goroutine is not.
	if closed(m.started) && !inner.Load() {
		t.Fatal("started before the wrapping listener asked its socket for a connection")
	}
	close(wrapReleased)
	wrapDone = true
	<-m.started               // blocks until started closes
	if !m.apply(ctx, table) { // a second table must not close it again
		t.Fatal("second table not applied")
	}
}

// TestHTTP2WriteTimeout: Config.HTTP2WriteTimeout (--http2-write-timeout)
// becomes the write timeout of the h2server serving a listener's HTTP/2.
func TestHTTP2WriteTimeout(t *testing.T) {
	for _, d := range []time.Duration{5 * time.Second, -1} {
		srv := withHTTP2(Config{HTTP2WriteTimeout: d}, &h1server.Server{Config: &http.Server{}})
		h2, ok := srv.HTTP2.(*h2server.Server)
		if !ok || h2.WriteTimeout != d {
			t.Errorf("HTTP2WriteTimeout %v: the listener's HTTP/2 server is %#v", d, srv.HTTP2)
		}
	}
}

// connServer hands what its listener accepts to conns.
type connServer struct {
	conns chan net.Conn
	ln    chan net.Listener
}

func (s *connServer) Serve(ln net.Listener) error {
	s.ln <- ln
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		s.conns <- c
	}
}
func (s *connServer) Shutdown(context.Context) error { return s.Close() }
func (s *connServer) Close() error                   { ln := <-s.ln; s.ln <- ln; return ln.Close() }

// TestListenerSocketIO: the data-path listeners accept *rawtcp.Conn
// (raw reads and writes), or the net package's connections with
// Config.NetSocketIO (--raw-socket-io=false).
func TestListenerSocketIO(t *testing.T) {
	for _, netIO := range []bool{false, true} {
		var tables atomic.Pointer[router.Table]
		srv := &connServer{conns: make(chan net.Conn, 1), ln: make(chan net.Listener, 1)}
		m := newListenerManager(slog.New(slog.DiscardHandler), 0, &tables, map[string]serverSpec{
			mesh.ListenerInbound: {newServer: func() server { return srv }},
		})
		m.netSocketIO = netIO
		if !m.apply(t.Context(), &router.Table{Inbound: &router.Listener{Address: "127.0.0.1:0"}}) {
			t.Fatal("table not applied")
		}
		ln := <-srv.ln
		srv.ln <- ln
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got := <-srv.conns
		_, raw := got.(*rawtcp.Conn)
		_, plain := got.(*net.TCPConn)
		if raw == netIO || plain != netIO {
			t.Errorf("netSocketIO %v: accepted a %T", netIO, got)
		}
		_ = got.Close()
		_ = c.Close()
		_ = srv.Close()
		m.wg.Wait()
	}
}
