package inbound

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
)

// With a serve function, a classified connection is served by it (first
// byte included) on the classifying goroutine, and Accept hands out none.
func TestListenerServesClassifiedConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type served struct {
		data string
		err  error
	}
	got := make(chan served, 1)
	l := NewListener(inner, nil, slog.New(slog.DiscardHandler), func(c net.Conn) bool {
		defer c.Close()
		b, err := io.ReadAll(c)
		got <- served{string(b), err}
		return true
	})
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
			err = errors.New("Accept handed out a connection that serve was given")
		}
		accepted <- err
	}()

	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var s served
	select {
	case s = <-got:
	case err := <-accepted:
		t.Fatalf("Accept before serve: %v", err)
	}
	c.Close()
	if s.err != nil || s.data != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("served %q, %v", s.data, s.err)
	}
	l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept: %v, want net.ErrClosed after Close", err)
	}
}
