package capture

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLooksHTTP(t *testing.T) {
	for _, tc := range []struct {
		in       string
		is, more bool
	}{
		{"GET / HTTP/1.1", true, false},
		{"GE", false, true},
		{"PRI * HTTP/2.0", true, false},
		{"\x16\x03\x01", false, false},
		{"GETX", false, false},
		{"", false, true},
	} {
		is, more := looksHTTP([]byte(tc.in))
		if is != tc.is || more != tc.more {
			t.Errorf("looksHTTP(%q) = %v, %v; want %v, %v", tc.in, is, more, tc.is, tc.more)
		}
	}
}

func TestSniffConn(t *testing.T) {
	for _, tc := range []struct {
		name, send string
		raw        bool
		wantRead   string
	}{
		{"http", "GET /x HTTP/1.1\r\n", false, "GET /x HTTP/1.1\r\n"},
		{"client-first tcp", "\x00\x01binary", true, "CONNECT 10.0.0.1:5432 HTTP/1.1\r\nHost: 10.0.0.1:5432\r\n\r\n\x00\x01binary"},
		{"server-first tcp", "", true, "CONNECT 10.0.0.1:5432 HTTP/1.1\r\nHost: 10.0.0.1:5432\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			app, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			inner, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c := &SniffConn{Conn: inner, dst: "10.0.0.1:5432", timeout: 50 * time.Millisecond}
			defer c.Close()
			if tc.send != "" {
				if _, err := io.WriteString(app, tc.send); err != nil {
					t.Fatal(err)
				}
			}
			got := make([]byte, len(tc.wantRead))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.wantRead || c.Raw() != tc.raw {
				t.Fatalf("read %q raw=%v; want %q raw=%v", got, c.Raw(), tc.wantRead, tc.raw)
			}
			if !tc.raw {
				return
			}
			// The 200 head is swallowed; what follows reaches the app.
			if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nhello"); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(app).ReadString('o')
			if err != nil || !strings.HasSuffix(line, "hello") || line != "hello" {
				t.Fatalf("app read %q, %v", line, err)
			}
		})
	}
	t.Run("refusal resets a TCP connection", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		app, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		inner, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := &SniffConn{Conn: inner, raw: true}
		if _, err := c.Write([]byte("HTTP/1.1 403 Forbidden\r\n\r\nweft: RBAC")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write of a refusal: %v, want net.ErrClosed", err)
		}
		_ = app.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := app.Read(make([]byte, 10))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("app read %d bytes, %v; want a connection reset", n, err)
		}
	})
	t.Run("refusal closes", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		c := &SniffConn{Conn: b, raw: true}
		go func() { _, _ = c.Write([]byte("HTTP/1.1 403 Forbidden\r\n\r\nweft: RBAC")) }()
		if n, err := a.Read(make([]byte, 10)); err == nil {
			t.Fatalf("app read %d bytes of a refusal", n)
		}
	})
}
