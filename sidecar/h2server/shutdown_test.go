package h2server

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestShutdownReturnsWhenAConnectionDoesNotRead: a connection whose
// writes block (its peer reads nothing) neither keeps Shutdown from
// returning when its context ends nor from sending GOAWAY to the others;
// Close ends it, and every goroutine ends.
func TestShutdownReturnsWhenAConnectionDoesNotRead(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(okHandler)}
	addr := serve(t, s)
	base := runtime.NumGoroutine()
	healthy := dialRaw(t, addr)
	healthy.pingRoundTrip([8]byte{1})

	cli, srv := net.Pipe() // a write blocks until the peer reads: this one never does
	defer cli.Close()
	served := make(chan struct{})
	go func() {
		s.ServeConn(context.Background(), srv, nil)
		close(served)
	}()
	go func() { _, _ = io.WriteString(cli, http2.ClientPreface) }()
	// Wait until the server is writing its SETTINGS to the pipe.
	deadline := time.Now().Add(waitFor)
	for !s.anyConnWriting() {
		if time.Now().After(deadline) {
			t.Fatal("the server never wrote to the connection")
		}
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	healthy.readUntil("GOAWAY on the healthy connection", isGoAway(http2.ErrCodeNo))
	cancel()
	select {
	case err := <-shut:
		if err == nil {
			t.Fatal("Shutdown returned nil with a connection still open")
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return after its context ended")
	}
	_ = s.Close()
	<-served
	_ = healthy.c.Close()
	settleGoroutines(t, base)
}

// anyConnWriting reports whether a connection is in a write to its socket.
func (s *Server) anyConnWriting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.mu.Lock()
		w := c.Flushing()
		c.mu.Unlock()
		if w {
			return true
		}
	}
	return false
}
