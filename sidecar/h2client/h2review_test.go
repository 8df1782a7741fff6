package h2client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// tokenConn is a client's end of a net.Pipe whose writes, once gated,
// each wait for a token, and whose write deadlines are not applied: a
// write ends when the test lets it, never by time.
type tokenConn struct {
	net.Conn
	gated  atomic.Bool
	tokens chan struct{}
}

func (c *tokenConn) Write(p []byte) (int, error) {
	if c.gated.Load() {
		<-c.tokens
	}
	return c.Conn.Write(p)
}

func (c *tokenConn) SetWriteDeadline(time.Time) error { return nil }

// TestCloseAfterBrokenWriteCompleted: a request cancelled while its body
// writer's write is in progress has that write broken (BreakWriteLocked);
// when the write completes after all, the body writer hands what others
// queued meanwhile to another writer and returns, even if the caller
// closed the response body in between (Close's flush for the stream,
// which found the write in progress, forgot the break): otherwise the
// body writer went on writing the others' frames to a peer that does not
// read, and Close, which waits for the body writer, with it until the
// write timeout.
func TestCloseAfterBrokenWriteCompleted(t *testing.T) {
	cn, sn := net.Pipe()
	t.Cleanup(func() { _ = sn.Close() })
	tc := &tokenConn{Conn: cn, tokens: make(chan struct{})}
	c := newClient(t)
	c.dial = func(context.Context, string) (net.Conn, error) { return tc, nil }
	t.Cleanup(func() { close(tc.tokens) }) // before the Client's Close
	go func() {
		// The peer answers stream 1's head, then reads everything.
		fc := peerFramer(t, sn)
		_ = fc.fr.WriteSettings()
		fc.readUntil(func(f http2.Frame) bool { return isHeaders(f) && f.Header().StreamID == 1 })
		fc.headers(1, false, ":status", "200")
		fc.readUntil(func(http2.Frame) bool { return false })
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	resp, err := c.RoundTrip(newRequest(t, ctx, http.MethodPost, "peer:80", "/1", pr)) //nolint:bodyclose // closed below, on a goroutine
	if err != nil {
		t.Fatal(err)
	}
	cc := connOf(c)
	cc.mu.Lock()
	st := cc.streams[1]
	cc.mu.Unlock()
	waitLocked(cc, func() bool { return !cc.Flushing() && cc.Buffered() == 0 })

	// The body writer's write (its DATA) waits for a token.
	tc.gated.Store(true)
	go func() { _, _ = pw.Write([]byte("data")) }()
	waitLocked(cc, func() bool { return cc.Flushing() && cc.Buffered() == 0 })
	// Another request's HEADERS wait behind it.
	go func() { _ = rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/3", nil)) }()
	waitLocked(cc, func() bool { return cc.Buffered() > 0 })

	cancel() // breaks the body writer's write (its deadline is not applied here)
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("body of a cancelled request: %v", err)
	}
	closed := make(chan struct{})
	go func() {
		_ = resp.Body.Close()
		close(closed)
	}()
	waitLocked(cc, func() bool { return st.callerDone }) // Close's flush is done
	tc.tokens <- struct{}{}                              // the broken write completes after all
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close waited for the body writer, which went on writing the others' frames to a peer that does not read")
	}
}
