package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// errHelloRead stops the handshake once the ClientHello is parsed.
var errHelloRead = errors.New("client hello read")

// peekSNI reads a TLS ClientHello from r and returns its server name and
// every byte read (to be replayed to the upstream). Nothing is written
// back to the client.
func peekSNI(r io.Reader) (string, []byte, error) {
	var buf bytes.Buffer
	conn := &sniffConn{r: io.TeeReader(io.LimitReader(r, 64<<10), &buf)}
	var (
		sni  string
		seen bool
	)
	err := tls.Server(conn, &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, seen = hello.ServerName, true
			return nil, errHelloRead
		},
		MinVersion: tls.VersionTLS12,
	}).HandshakeContext(context.Background()) // the reader is bounded by the caller's deadline
	if !seen {
		if err == nil {
			err = errors.New("no client hello")
		}
		return "", nil, err
	}
	return sni, buf.Bytes(), nil
}

// sniffConn is a read-only net.Conn for peekSNI: writes are dropped.
type sniffConn struct{ r io.Reader }

func (c *sniffConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *sniffConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *sniffConn) Close() error                     { return nil }
func (c *sniffConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *sniffConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *sniffConn) SetDeadline(time.Time) error      { return nil }
func (c *sniffConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sniffConn) SetWriteDeadline(time.Time) error { return nil }
