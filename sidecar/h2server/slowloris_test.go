package h2server

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestSlowClientsAreClosed: ReadHeaderTimeout bounds the wait for the
// client preface and its SETTINGS however slowly they come, and
// IdleTimeout ends a connection that opened no stream.
func TestSlowClientsAreClosed(t *testing.T) {
	tests := []struct {
		name   string
		srv    *Server
		client func(c net.Conn)
	}{
		{"sends nothing", &Server{ReadHeaderTimeout: 50 * time.Millisecond}, func(net.Conn) {}},
		{"sends the preface a byte at a time", &Server{ReadHeaderTimeout: 50 * time.Millisecond}, func(c net.Conn) {
			for i := range len(http2.ClientPreface) {
				if _, err := c.Write([]byte{http2.ClientPreface[i]}); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}},
		{"sends the preface but no SETTINGS", &Server{ReadHeaderTimeout: 50 * time.Millisecond}, func(c net.Conn) {
			_, _ = c.Write([]byte(http2.ClientPreface))
		}},
		{"opens no stream", &Server{IdleTimeout: 50 * time.Millisecond}, func(c net.Conn) {
			_, _ = c.Write([]byte(http2.ClientPreface))
			_ = http2.NewFramer(c, nil).WriteSettings()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			s.Handler = http.HandlerFunc(okHandler)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan struct{})
			go func() {
				defer close(served)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.ServeConn(context.Background(), c, nil)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				// Read what the server sends, so that its writes never wait.
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
			go tc.client(c)
			select {
			case <-served:
			case <-time.After(waitFor):
				t.Fatal("the connection is still served")
			}
		})
	}
}
