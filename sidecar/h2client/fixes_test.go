package h2client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// gatedConn is a client's end of a net.Pipe whose writes wait for gate
// (nil: none) and whose write deadlines are recorded.
type gatedConn struct {
	net.Conn

	mu   sync.Mutex
	gate chan struct{}
	last time.Time
	sets int
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.Conn.Write(p)
}

func (g *gatedConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	g.last, g.sets = t, g.sets+1
	g.mu.Unlock()
	return g.Conn.SetWriteDeadline(t)
}

// pipeClient is a Client whose one connection is gc; the peer's end is
// returned too.
func pipeClient(t *testing.T, gc *gatedConn, opts ...Option) (*Client, net.Conn) {
	t.Helper()
	cn, sn := net.Pipe()
	t.Cleanup(func() { _ = sn.Close() })
	gc.Conn = cn
	dials := 0
	c := newClient(t, opts...)
	c.dial = func(context.Context, string) (net.Conn, error) {
		if dials++; dials > 1 {
			return nil, errors.New("one connection only")
		}
		return gc, nil
	}
	return c, sn
}

// connOf waits for c's connection to peer:80.
func connOf(c *Client) *conn {
	for {
		c.mu.Lock()
		if p := c.peers["peer:80"]; p != nil && len(p.conns) == 1 {
			cc := p.conns[0]
			c.mu.Unlock()
			return cc
		}
		c.mu.Unlock()
		runtime.Gosched()
	}
}

func waitLocked(cc *conn, cond func() bool) {
	for {
		cc.mu.Lock()
		ok := cond()
		cc.mu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
}

// peerFramer reads the client preface from sn and returns a Framer over
// it.
func peerFramer(t *testing.T, sn net.Conn) *fakeConn {
	t.Helper()
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(sn, buf); err != nil {
		t.Error(err)
	}
	fc := &fakeConn{t: t, nc: sn, fr: http2.NewFramer(sn, sn)}
	fc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fc.henc = hpack.NewEncoder(&fc.hbuf)
	return fc
}

// TestWriteTimeout: a write the peer does not take within the write
// timeout fails the connection and its streams, whoever writes (the
// caller, the read loop); a stream whose HEADERS never left fails with
// ErrNotProcessed; the deadline is cleared once nothing is pending.
func TestWriteTimeout(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"caller's write", func(t *testing.T) {
			// The peer reads nothing.
			c, _ := pipeClient(t, &gatedConn{}, WithWriteTimeout(10*time.Millisecond))
			err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/", nil))
			if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrNotProcessed) {
				t.Fatalf("a request whose write the peer does not take: %v", err)
			}
		}},
		{"read loop's write", func(t *testing.T) {
			// The peer reads the request, sends a PING and reads no more:
			// the read loop's write of the ACK stalls.
			c, sn := pipeClient(t, &gatedConn{}, WithWriteTimeout(10*time.Millisecond))
			go func() {
				fc := peerFramer(t, sn)
				fc.readUntil(isHeaders)
				_ = fc.fr.WritePing(false, [8]byte{1})
			}()
			err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/", nil))
			if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrNotProcessed) {
				t.Fatalf("a request waiting for its head while the read loop's write stalls: %v", err)
			}
		}},
		{"queued request", func(t *testing.T) {
			// /1's write is held (its deadline passes meanwhile) while
			// /3's HEADERS are queued: /3 was never sent.
			gc := &gatedConn{gate: make(chan struct{})}
			c, _ := pipeClient(t, gc, WithWriteTimeout(10*time.Millisecond))
			errc := make(chan error, 1)
			go func() { errc <- rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/1", nil)) }()
			cc := connOf(c)
			waitLocked(cc, func() bool { return cc.nextID == 3 && cc.Flushing() && cc.Buffered() == 0 })
			queued := make(chan error, 1)
			go func() {
				queued <- rtErr(c, newRequest(t, context.Background(), http.MethodPost, "peer:80", "/3", strings.NewReader("b")))
			}()
			waitLocked(cc, func() bool { return cc.nextID == 5 })
			close(gc.gate)
			if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrNotProcessed) {
				t.Fatalf("the request being written: %v", err)
			}
			if err := <-queued; !errors.Is(err, ErrNotProcessed) {
				t.Fatalf("a request queued behind the write that failed: %v", err)
			}
		}},
		{"cleared when idle", func(t *testing.T) {
			gc := &gatedConn{}
			c, sn := pipeClient(t, gc, WithWriteTimeout(time.Hour))
			go func() {
				fc := peerFramer(t, sn)
				f := fc.readUntil(isHeaders)
				fc.headers(f.Header().StreamID, true, ":status", "200")
				fc.readUntil(func(http2.Frame) bool { return false })
			}()
			if err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/", nil)); err != nil {
				t.Fatal(err)
			}
			cc := connOf(c)
			waitLocked(cc, func() bool { return !cc.Flushing() && cc.Buffered() == 0 })
			gc.mu.Lock()
			defer gc.mu.Unlock()
			if gc.sets == 0 || !gc.last.IsZero() {
				t.Fatalf("write deadline %v after %d settings, want one per write, none while idle", gc.last, gc.sets)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// rtReadErr is RoundTrip's error, or else the error of reading its
// body to the end.
func rtReadErr(c *Client, req *http.Request) error {
	resp, err := c.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

// TestRequestBodyLength: a request body longer or shorter than its
// ContentLength fails the request (the stream is reset, or for a body
// received whole nothing is sent), streamed or whole; one that matches,
// or whose length is unknown (0), is sent.
func TestRequestBodyLength(t *testing.T) {
	addr, _ := startH2Server(t, http.HandlerFunc(echo), 0)
	c := newClient(t)
	tests := []struct {
		name  string
		body  string
		clen  int64
		whole bool
		want  error
	}{
		{"streamed longer", "abcdef", 3, false, errReqBodyTooLong},
		{"streamed shorter", "ab", 5, false, errReqBodyTooShort},
		{"streamed exact", "abc", 3, false, nil},
		{"streamed unknown", "abc", 0, false, nil},
		{"whole longer", "abcdef", 3, true, errReqBodyTooLong},
		{"whole shorter", "ab", 5, true, errReqBodyTooShort},
		{"whole exact", "abc", 3, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.ReadCloser = io.NopCloser(strings.NewReader(tt.body))
			if tt.whole {
				body = &wholeBody{data: []byte(tt.body)}
			}
			req := newRequest(t, context.Background(), http.MethodPost, addr, "/", nil)
			req.Body, req.ContentLength = body, tt.clen
			err := rtReadErr(c, req)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("body of %d bytes, ContentLength %d: %v, want %v", len(tt.body), tt.clen, err, tt.want)
			}
		})
	}
}

// TestInformationalBound: the 1xx heads of a response count against the
// response header limit together: a peer that sends them on and on has
// the stream reset; a few are dropped and the final head delivered.
func TestInformationalBound(t *testing.T) {
	tests := []struct {
		name    string
		n       int // 1xx heads before the 200
		wantErr bool
	}{
		{"a few", 3, false},
		{"unbounded", 1000, true}, // 42 bytes each: 42000 > 4096
	}
	fs := startFake(t)
	c := newClient(t, WithMaxHeaderBytes(4096))
	var fc *fakeConn
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() { errc <- rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil)) }()
			if fc == nil {
				fc = <-fs.conns
			}
			id := fc.readUntil(isHeaders).Header().StreamID
			for range tt.n {
				fc.headers(id, false, ":status", "103")
			}
			fc.headers(id, true, ":status", "200")
			err := <-errc
			if tt.wantErr != (err != nil) || err != nil && !strings.Contains(err.Error(), "1xx") {
				t.Fatalf("%d 1xx heads: %v", tt.n, err)
			}
		})
	}
}

// TestHeaderListSizeTrailers: the peer's SETTINGS_MAX_HEADER_LIST_SIZE
// bounds the request head's trailer field and the request trailers too:
// over it, the request fails (errHeaderListSize) instead of being sent.
func TestHeaderListSizeTrailers(t *testing.T) {
	fs := startFake(t, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1024})
	c := newClient(t)
	go func() {
		// Answers each request once the client ended it.
		fc := <-fs.conns
		fc.readUntil(func(f http2.Frame) bool {
			if f.Header().Flags.Has(http2.FlagHeadersEndStream) && (f.Header().Type == http2.FrameHeaders || f.Header().Type == http2.FrameData) {
				fc.headers(f.Header().StreamID, true, ":status", "200")
			}
			return false
		})
	}()
	// The peer's SETTINGS applies from the first response on.
	if err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/warm", nil)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("a", 2000)
	tests := []struct {
		name    string
		trailer http.Header
		want    error
	}{
		{"small", http.Header{"X-T": {"v"}}, nil},
		{"trailer field", http.Header{"X-" + big: nil}, errHeaderListSize}, // no value: an empty trailers block
		{"trailers", http.Header{"X-T": {big}}, errHeaderListSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, context.Background(), http.MethodPost, fs.addr, "/", io.NopCloser(strings.NewReader("body")))
			req.Trailer = tt.trailer
			if err := rtErr(c, req); tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("request trailers %d bytes: %v, want %v", len(tt.trailer), err, tt.want)
			}
		})
	}
}

// TestCancelAfterResponse: cancelling the request's context after the
// response came fails the body's reads while the response is not
// complete; a complete body stays readable to its end (as x/net's).
func TestCancelAfterResponse(t *testing.T) {
	tests := []struct {
		name     string
		complete bool
		want     error
	}{
		{"complete", true, nil},
		{"not complete", false, context.Canceled},
	}
	fs := startFake(t)
	c := newClient(t)
	var fc *fakeConn
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			respc := make(chan *http.Response, 1)
			go func() {
				resp, err := c.RoundTrip(newRequest(t, ctx, http.MethodGet, fs.addr, "/", nil)) //nolint:bodyclose // closed below
				if err != nil {
					t.Error(err)
				}
				respc <- resp
			}()
			if fc == nil {
				fc = <-fs.conns
			}
			id := fc.readUntil(isHeaders).Header().StreamID
			fc.headers(id, false, ":status", "200")
			_ = fc.fr.WriteData(id, tt.complete, []byte("body"))
			resp := <-respc
			if resp == nil {
				t.FailNow()
			}
			defer resp.Body.Close()
			if tt.complete {
				// The end came: it is read when the body's bytes are.
				cc := connTo(c, fs.addr)
				waitLocked(cc, func() bool { return cc.streams[id] == nil })
			}
			cancel()
			b, err := io.ReadAll(resp.Body)
			if !errors.Is(err, tt.want) || tt.want == nil && string(b) != "body" {
				t.Fatalf("body after cancel: %q, %v, want %v", b, err, tt.want)
			}
		})
	}
}

// connTo is c's one connection to addr.
func connTo(c *Client, addr string) *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[addr].conns[0]
}

// stacksWith says whether a goroutine's stack has each of frames.
func stacksWith(frames ...string) bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			return true
		}
	}
	return false
}

// TestCloseWaitsForKeepAlive: Close waits for a keep-alive tick in
// progress (here held in its PING's write), for PINGs and for the idle
// timeout: no tick runs once Close returned.
func TestCloseWaitsForKeepAlive(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
	}{
		{"ping", WithPing(time.Millisecond, time.Hour)},
		{"ping and idle timeout", func(c *Client) { WithPing(time.Millisecond, time.Hour)(c); WithIdleTimeout(time.Hour)(c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gc := &gatedConn{}
			c, sn := pipeClient(t, gc, tt.opt)
			go func() {
				fc := peerFramer(t, sn)
				fc.readUntil(func(f http2.Frame) bool {
					switch f := f.(type) {
					case *http2.MetaHeadersFrame:
						fc.headers(f.StreamID, true, ":status", "200")
					case *http2.PingFrame:
						if !f.IsAck() {
							_ = fc.fr.WritePing(true, f.Data)
						}
					}
					return false
				})
			}()
			if err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/", nil)); err != nil {
				t.Fatal(err)
			}
			// The next write, a PING of the timer's, is held.
			gate := make(chan struct{})
			gc.mu.Lock()
			gc.gate = gate
			gc.mu.Unlock()
			for !stacksWith("(*conn).tick(", "(*gatedConn).Write(") {
				runtime.Gosched()
			}
			closed := make(chan bool, 1)
			go func() {
				_ = c.Close()
				closed <- stacksWith("(*conn).tick(")
			}()
			// Close failed the connection and its read loop returned:
			// Close now waits for the tick alone.
			for stacksWith("(*conn).readLoop(") || !stacksWith("(*Client).Close(", "(*WaitGroup).Wait(") {
				select {
				case ticking := <-closed:
					t.Fatalf("Close returned while a keep-alive tick runs (%v)", ticking)
				default:
				}
				runtime.Gosched()
			}
			close(gate)
			if <-closed {
				t.Fatal("a keep-alive tick runs after Close returned")
			}
		})
	}
}

// TestCancelStalledWrite: a request whose own write stalls (the peer
// reads nothing) returns when its context is cancelled, not when the
// write timeout (an hour here) expires, whether the caller writes (its
// HEADERS) or its body writer does (DATA, which the caller waits for
// once its stream was reset): the write is ended, which fails the
// connection as a write timeout does, so a request queued behind it was
// not processed.
func TestCancelStalledWrite(t *testing.T) {
	tests := []struct {
		name string
		// stall starts the request with ctx and returns once its write
		// is in progress and stalled.
		stall func(t *testing.T, c *Client, sn net.Conn, ctx context.Context, errc chan<- error)
	}{
		{"caller's write", func(t *testing.T, c *Client, _ net.Conn, ctx context.Context, errc chan<- error) {
			go func() { errc <- rtErr(c, newRequest(t, ctx, http.MethodGet, "peer:80", "/1", nil)) }()
			cc := connOf(c)
			waitLocked(cc, func() bool { return cc.nextID == 3 && cc.Flushing() && cc.Buffered() == 0 })
		}},
		{"body writer's write", func(t *testing.T, c *Client, sn net.Conn, ctx context.Context, errc chan<- error) {
			pr, pw := io.Pipe()
			go func() { errc <- rtErr(c, newRequest(t, ctx, http.MethodPost, "peer:80", "/1", pr)) }()
			fc := peerFramer(t, sn)
			fc.readUntil(isHeaders) // and no more
			if _, err := pw.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			cc := connOf(c)
			waitLocked(cc, func() bool { return cc.Flushing() && cc.Buffered() == 0 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sn := pipeClient(t, &gatedConn{}, WithWriteTimeout(time.Hour))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			tt.stall(t, c, sn, ctx, errc)
			cc := connOf(c)
			queued := make(chan error, 1)
			go func() {
				queued <- rtErr(c, newRequest(t, context.Background(), http.MethodPost, "peer:80", "/3", strings.NewReader("b")))
			}()
			waitLocked(cc, func() bool { return cc.nextID == 5 })
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("a request cancelled while its write stalls: %v", err)
			}
			if err := <-queued; !errors.Is(err, ErrNotProcessed) {
				t.Fatalf("a request queued behind the write ended: %v", err)
			}
		})
	}
}
