package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultSniffTimeout bounds how long the outbound waits for the first
// bytes of a captured connection before treating it as raw TCP (a
// server-first protocol sends nothing first).
const DefaultSniffTimeout = 250 * time.Millisecond

// SniffListener hands the outbound HTTP server every captured connection:
// HTTP ones as they are, anything else (by its first bytes, or silence
// for the sniff timeout) as a synthetic "CONNECT <original dst>" request
// whose 200 answer is swallowed, so raw TCP takes the same routing and
// authorization path as CONNECT, and the app sees a plain byte stream (a
// refusal resets the connection). Wrap a Listener (it needs the original
// destination).
type SniffListener struct {
	net.Listener
	Timeout time.Duration
}

// Accept implements net.Listener; it never blocks on a connection's bytes
// (the sniff happens on the server's first Read).
func (l SniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dst, ok := FromConn(c)
	if !ok {
		return c, nil
	}
	t := l.Timeout
	if t <= 0 {
		t = DefaultSniffTimeout
	}
	return &SniffConn{Conn: c, dst: dst.String(), timeout: t}, nil
}

// SniffConn is a captured connection being classified on its first Read.
type SniffConn struct {
	net.Conn
	dst     string
	timeout time.Duration

	once   sync.Once
	raw    bool
	prefix io.Reader // synthetic CONNECT head, then the peeked bytes
	// head buffers the server's response head in raw mode until it is
	// complete; headDone once it was swallowed.
	head     []byte
	headDone bool
	mu       sync.Mutex
}

// NetConn returns the wrapped connection.
func (c *SniffConn) NetConn() net.Conn { return c.Conn }

// Raw reports whether the connection was classified as raw TCP (valid
// once the server read its request).
func (c *SniffConn) Raw() bool { return c.raw }

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("HEAD "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "), []byte("PRI * HTTP/2"),
}

// looksHTTP reports whether b (the first bytes) can start an HTTP/1.x
// request or the HTTP/2 preface; more reports that b is a prefix of one
// and more bytes are needed.
func looksHTTP(b []byte) (is, more bool) {
	for _, m := range httpMethods {
		n := min(len(b), len(m))
		if bytes.Equal(b[:n], m[:n]) {
			if n == len(m) {
				return true, false
			}
			more = true
		}
	}
	return false, more
}

func (c *SniffConn) sniff() {
	buf := make([]byte, 0, 16)
	deadline := time.Now().Add(c.timeout)
	_ = c.Conn.SetReadDeadline(deadline)
	for {
		tmp := make([]byte, 16-len(buf))
		n, err := c.Conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		is, more := looksHTTP(buf)
		if is {
			break
		}
		if !more || err != nil || len(buf) >= 16 {
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) && len(buf) == 0 {
				// Closed before saying anything: let the server see it.
				break
			}
			c.raw = true
			break
		}
	}
	_ = c.Conn.SetReadDeadline(time.Time{})
	rest := bytes.NewReader(buf)
	if c.raw {
		c.prefix = io.MultiReader(bytes.NewReader([]byte("CONNECT "+c.dst+" HTTP/1.1\r\nHost: "+c.dst+"\r\n\r\n")), rest)
	} else {
		c.prefix = rest
	}
}

// Read implements net.Conn.
func (c *SniffConn) Read(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if c.prefix != nil {
		n, err := c.prefix.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, nil
		}
		c.prefix = nil
	}
	return c.Conn.Read(p)
}

// Write implements net.Conn: in raw mode the server's response head is
// swallowed when it is a 200; any other answer resets the connection.
func (c *SniffConn) Write(p []byte) (int, error) {
	if !c.raw {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.headDone {
		return c.Conn.Write(p)
	}
	c.head = append(c.head, p...)
	i := bytes.Index(c.head, []byte("\r\n\r\n"))
	if i < 0 {
		return len(p), nil
	}
	if !bytes.HasPrefix(c.head, []byte("HTTP/1.1 200")) {
		// A TCP client learns of a refusal (authorization, no route, the
		// peer unreachable) the way a TCP proxy tells it: a reset.
		Reset(c.Conn)
		return 0, net.ErrClosed
	}
	c.headDone = true
	rest := c.head[i+4:]
	c.head = nil
	if len(rest) > 0 {
		if _, err := c.Conn.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Reset closes c with a TCP reset (SO_LINGER 0) when a *net.TCPConn is
// under it (unwrapped through NetConn), else closes it plainly.
func Reset(c net.Conn) {
	for u := c; u != nil; {
		if tc, ok := u.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
			break
		}
		w, ok := u.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		u = w.NetConn()
	}
	_ = c.Close()
}

type rawKey struct{}

// SniffContext records c's SniffConn in ctx (chain into ConnContext).
func SniffContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if sc, ok := c.(*SniffConn); ok {
			return context.WithValue(ctx, rawKey{}, sc)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// IsRawTCP reports whether the request in ctx is the synthetic CONNECT of
// a raw TCP connection (never true for a CONNECT the app sent itself).
func IsRawTCP(ctx context.Context) bool {
	sc, ok := ctx.Value(rawKey{}).(*SniffConn)
	return ok && sc.raw
}
