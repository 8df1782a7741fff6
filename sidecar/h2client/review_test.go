package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestBodyBeyondTheWindow: a request body the peer's windows do not
// take yet (it never sends WINDOW_UPDATE) does not hold the caller: the
// response the peer sends before the body's end is delivered, and
// cancelling the request's context resets the stream (CANCEL) and ends
// the body's writer, both while the caller waits for the head and after
// the response ended (END_STREAM on its HEADERS) while the body was
// still being sent. A body received whole is never Read.
func TestBodyBeyondTheWindow(t *testing.T) {
	big := bytes.Repeat([]byte("w"), 100<<10) // > the initial windows, 65535
	for _, tc := range []struct {
		name    string
		whole   bool // a body given at once (ReadRest), or a stream
		respond bool // the peer answers before the body's end
	}{
		{"whole body, cancel waiting for the head", true, false},
		{"whole body, response before its end", true, true},
		{"streamed body, cancel waiting for the head", false, false},
		{"streamed body, response before its end", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t)
			c := newClient(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := newRequest(t, ctx, http.MethodPost, fs.addr, "/", nil)
			wb := &wholeBody{data: big}
			pr, pw := io.Pipe()
			writeErr := make(chan error, 1)
			if tc.whole {
				req.Body = wb
			} else {
				req.Body = pr
				go func() {
					_, err := pw.Write(big)
					for err == nil {
						_, err = pw.Write(big)
					}
					writeErr <- err
				}()
			}
			type result struct {
				resp *http.Response
				err  error
			}
			rc := make(chan result, 1)
			go func() {
				resp, err := c.RoundTrip(req) //nolint:bodyclose // NoBody, or none
				rc <- result{resp, err}
			}()
			fc := <-fs.conns
			id := fc.readUntil(isHeaders).Header().StreamID
			// The windows are used up: 65535 bytes of DATA.
			got := 0
			fc.readUntil(func(f http2.Frame) bool {
				if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id {
					got += len(d.Data())
				}
				return got == initialWindow
			})
			if tc.respond {
				fc.headers(id, true, ":status", "200")
				r := <-rc
				if r.err != nil || r.resp.StatusCode != http.StatusOK {
					t.Fatalf("response before the request body's end: %v", r.err)
				}
				cancel()
			} else {
				cancel()
				if r := <-rc; !errors.Is(r.err, context.Canceled) {
					t.Fatalf("cancelled while the body waits for the window: %v", r.err)
				}
			}
			rst, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
			if !ok || rst.StreamID != id || rst.ErrCode != http2.ErrCodeCancel {
				t.Fatalf("RST_STREAM %v, want CANCEL of stream %d", rst, id)
			}
			if tc.whole {
				if n := wb.reads.Load(); n != 0 {
					t.Fatalf("a body received whole was Read %d times", n)
				}
			} else if err := <-writeErr; !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("the request body was not closed: %v", err)
			}
		})
	}
}

// TestContentLengthHeadersOnly: a response whose HEADERS end the stream
// while its content-length declares bytes is malformed (RFC 9113
// 8.1.1): the request fails (the stream is reset, PROTOCOL_ERROR)
// instead of a response that says 10 bytes and has none. A 204, a 304
// and the response to HEAD carry their content-length without a body.
func TestContentLengthHeadersOnly(t *testing.T) {
	fs := startFake(t)
	c := newClient(t)
	var fc *fakeConn
	for _, tc := range []struct {
		method, status string
		ok             bool
	}{
		{http.MethodGet, "200", false},
		{http.MethodGet, "204", true},
		{http.MethodGet, "304", true},
		{http.MethodHead, "200", true},
	} {
		type result struct {
			resp *http.Response
			err  error
		}
		rc := make(chan result, 1)
		go func() {
			resp, err := c.RoundTrip(newRequest(t, context.Background(), tc.method, fs.addr, "/", nil)) //nolint:bodyclose // NoBody
			rc <- result{resp, err}
		}()
		if fc == nil {
			fc = <-fs.conns
		}
		id := fc.readUntil(isHeaders).Header().StreamID
		fc.headers(id, true, ":status", tc.status, "content-length", "10")
		r := <-rc
		if tc.ok != (r.err == nil) {
			t.Fatalf("%s %s with content-length 10 and no DATA: %v", tc.method, tc.status, r.err)
		}
		if r.err == nil {
			if r.resp.ContentLength != 10 || r.resp.Body != http.NoBody {
				t.Fatalf("%s %s: ContentLength %d, body %v", tc.method, tc.status, r.resp.ContentLength, r.resp.Body)
			}
			continue
		}
		rst, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
		if !ok || rst.StreamID != id || rst.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("RST_STREAM %v, want PROTOCOL_ERROR of stream %d", rst, id)
		}
	}
}

// TestLargeDataIsNotAFlood: the 1 MiB bound on queued control frames
// counts control frames, not a large DATA frame queued behind a write in
// progress (a body received whole, to a peer whose SETTINGS allow 16 MiB
// frames and large windows, as net/http's HTTP/2 server's 1 MiB): a PING
// then is answered, not taken for a flood that fails the connection. The
// peer is a net.Pipe, which holds every write until the peer reads it.
func TestLargeDataIsNotAFlood(t *testing.T) {
	c, sn := pipeClient(t, &gatedConn{}, WithWindows(1<<20, 1<<20))
	var out bytes.Buffer
	fw := http2.NewFramer(&out, nil)
	send := func() {
		t.Helper()
		if _, err := sn.Write(out.Bytes()); err != nil {
			t.Fatal(err)
		}
		out.Reset()
	}
	fr := http2.NewFramer(nil, sn)
	fr.SetMaxReadFrameSize(16<<20 - 1)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var henc bytes.Buffer
	enc := hpack.NewEncoder(&henc)
	readUntil := func(match func(http2.Frame) bool) http2.Frame {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading the client: %v", err)
			}
			if match(f) {
				return f
			}
		}
	}
	errc := make(chan error, 3)
	rt := func(method, path string, body io.ReadCloser) {
		req := newRequest(t, context.Background(), method, "peer:80", path, nil)
		if body != nil {
			req.Body = body
		}
		go func() { errc <- rtErr(c, req) }()
	}
	rt(http.MethodGet, "/1", nil)
	if _, err := io.ReadFull(sn, make([]byte, len(http2.ClientPreface))); err != nil {
		t.Fatal(err)
	}
	readUntil(isHeaders)
	_ = fw.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16<<20 - 1}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	_ = fw.WriteWindowUpdate(0, maxWindow-initialWindow)
	send()
	readUntil(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	cc := connOf(c)
	// A write in progress that the peer does not read yet, by the
	// caller of /2 (the read loop's write of the ACK is over: it reads).
	waitLocked(cc, func() bool { return !cc.Flushing() && cc.Buffered() == 0 })
	rt(http.MethodGet, "/2", nil)
	waitLocked(cc, func() bool { return cc.nextID == 5 && cc.Flushing() && cc.Buffered() == 0 })
	// A 2 MiB body received whole: one DATA frame, queued behind it.
	rt(http.MethodPost, "/3", &wholeBody{data: bytes.Repeat([]byte("d"), 2<<20)})
	waitLocked(cc, func() bool { return cc.Buffered() > maxControlPending })
	_ = fw.WritePing(false, [8]byte{1})
	send()
	readUntil(func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() })
	for _, id := range []uint32{1, 3, 5} {
		henc.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "204"})
		_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: henc.Bytes(), EndStream: true, EndHeaders: true})
	}
	send()
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestFailedWaitingForRoom: a request that waits for room in the write
// buffer (64 KiB queued behind a write the peer does not take) when the
// connection fails was not sent: its error wraps ErrNotProcessed. The
// request whose write was in progress may have reached the peer: its
// error does not.
func TestFailedWaitingForRoom(t *testing.T) {
	c, sn := pipeClient(t, &gatedConn{})
	errc := make(chan error, 2)
	go func() { errc <- rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/1", nil)) }()
	cc := connOf(c)
	// /1's caller writes, and the peer reads nothing.
	waitLocked(cc, func() bool { return cc.nextID == 3 && cc.Flushing() && cc.Buffered() == 0 })
	big := newRequest(t, context.Background(), http.MethodGet, "peer:80", "/2", nil)
	big.Header.Set("X-Big", strings.Repeat("b", 2*maxPending)) // 6 bits each in Huffman
	go func() { errc <- rtErr(c, big) }()
	waitLocked(cc, func() bool { return cc.Buffered() >= maxPending })
	if got, err := c.getConn(context.Background(), "peer:80"); err != nil || got != cc {
		t.Fatalf("getConn: %v", err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := cc.roundTrip(newRequest(t, context.Background(), http.MethodPost, "peer:80", "/3", strings.NewReader("b"))) //nolint:bodyclose // fails
		waiting <- err
	}()
	// Its reservation taken, it waits for room.
	waitLocked(cc, func() bool { return cc.reserved == 0 })
	_ = sn.Close()
	if err := <-waiting; !errors.Is(err, ErrNotProcessed) {
		t.Fatalf("a request that waited for room on a failed connection: %v", err)
	}
	// /1 was being written; /2, queued, was not processed: without a
	// body it goes again, and its new dial fails.
	for range 2 {
		if err := <-errc; err == nil || errors.Is(err, ErrNotProcessed) {
			t.Fatalf("a request written, or queued and sent again, when the connection failed: %v", err)
		}
	}
}

// TestCancelWaitingForRoom: a body writer that waits for room in the
// write buffer (64 KiB queued behind a write the peer does not take)
// stops when the request's context ends: RoundTrip returns the
// context's error instead of waiting for the peer to read.
func TestCancelWaitingForRoom(t *testing.T) {
	c, _ := pipeClient(t, &gatedConn{})
	go func() { _ = rtErr(c, newRequest(t, context.Background(), http.MethodGet, "peer:80", "/1", nil)) }()
	cc := connOf(c)
	// /1's caller writes, and the peer reads nothing.
	waitLocked(cc, func() bool { return cc.nextID == 3 && cc.Flushing() && cc.Buffered() == 0 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- rtErr(c, newRequest(t, ctx, http.MethodPost, "peer:80", "/3", pr)) }()
	waitLocked(cc, func() bool { return cc.nextID == 5 })
	big := newRequest(t, context.Background(), http.MethodGet, "peer:80", "/5", nil)
	big.Header.Set("X-Big", strings.Repeat("b", 2*maxPending)) // 6 bits each in Huffman
	go func() { _ = rtErr(c, big) }()
	waitLocked(cc, func() bool { return cc.Buffered() >= maxPending })
	// The body writer has these bytes: it waits for room to send them.
	if _, err := pw.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while its body writer waits for room: %v", err)
	}
}
