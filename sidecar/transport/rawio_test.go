package transport_test

import (
	"context"
	"net"
	"testing"

	"github.com/weftmesh/weft/sidecar/internal/rawtcp"
	"github.com/weftmesh/weft/sidecar/transport"
)

// The Dialer's connections make raw reads and writes (rawtcp) unless
// NetSocketIO keeps the net package's.
func TestDialerSocketIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	for _, netIO := range []bool{false, true} {
		d := transport.NewDialer(0)
		d.NetSocketIO = netIO
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		_, raw := c.(*rawtcp.Conn)
		_, plain := c.(*net.TCPConn)
		if raw == netIO || plain != netIO {
			t.Errorf("NetSocketIO %v: dialed a %T", netIO, c)
		}
	}
}
