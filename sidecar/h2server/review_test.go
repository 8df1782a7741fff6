package h2server

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// settleGoroutines waits until no more than want goroutines run; it fails
// the test with their stacks when they do not end within waitFor.
func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// pingRoundTrip sends a PING and reads until its ACK: every frame the
// client sent before it was processed by the read loop.
func (rc *rawClient) pingRoundTrip(data [8]byte) {
	rc.t.Helper()
	if err := rc.fr.WritePing(false, data); err != nil {
		rc.t.Fatal(err)
	}
	rc.readUntil("PING ACK", func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == data
	})
}

// TestRequestBodiesHoldNoMoreThanTheConnectionWindow: the request bodies
// of a connection's streams hold memory for the bytes the peer sent and
// the handlers did not read yet, which the connection window bounds; a
// stream whose handler read what it was sent does not keep the buffer it
// took (one stream window per stream: MaxConcurrentStreams times
// StreamWindow per connection, 1000 MiB on the inbound).
func TestRequestBodiesHoldNoMoreThanTheConnectionWindow(t *testing.T) {
	const (
		streams = 8
		window  = 1 << 20
		sent    = 512 << 10 // the connection window is open again after it was read
	)
	type handlerState struct {
		read chan struct{}
		body chan *requestBody
	}
	states := make(map[string]*handlerState, streams)
	for i := range streams {
		states["/"+string(rune('a'+i))] = &handlerState{read: make(chan struct{}), body: make(chan *requestBody, 1)}
	}
	addr := serve(t, &Server{StreamWindow: window, ConnWindow: window, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs := states[r.URL.Path]
		select {
		case <-hs.read:
		case <-r.Context().Done():
			return
		}
		if _, err := io.ReadFull(r.Body, make([]byte, sent)); err != nil {
			t.Errorf("%s: %v", r.URL.Path, err)
		}
		hs.body <- r.Body.(*requestBody)
		<-r.Context().Done() // the stream stays open, its body read
	})})
	rc := dialRaw(t, addr)
	chunk := make([]byte, maxFrameSize)
	var bodies []*requestBody
	for i := range streams {
		id := uint32(2*i + 1)
		path := "/" + string(rune('a'+i))
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", path}
		if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(kv...), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < sent; n += len(chunk) {
			if err := rc.fr.WriteData(id, false, chunk); err != nil {
				t.Fatal(err)
			}
		}
		rc.pingRoundTrip([8]byte{byte(i)}) // all of it is buffered before the handler reads
		close(states[path].read)
		bodies = append(bodies, <-states[path].body)
	}
	held := 0
	for _, b := range bodies {
		held += b.held()
	}
	if held > window {
		t.Fatalf("request bodies hold %d bytes of buffers for 0 unread bytes, want at most the connection window (%d)", held, window)
	}
}

// TestHandlersEndWhenTheConnectionDies: handlers blocked reading a body,
// writing into a closed window, waiting on their context, and streams
// queued behind MaxConcurrentStreams all end when the client goes away.
func TestHandlersEndWhenTheConnectionDies(t *testing.T) {
	started := make(chan struct{}, 16)
	addr := serve(t, &Server{MaxConcurrentStreams: 3, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		switch r.URL.Path {
		case "/read":
			_, _ = io.Copy(io.Discard, r.Body)
		case "/write":
			for {
				if _, err := w.Write(make([]byte, 64<<10)); err != nil {
					return
				}
			}
		default:
			<-r.Context().Done()
		}
	})})
	base := runtime.NumGoroutine()
	rc := dialRaw(t, addr)
	if err := rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"/read", "/write", "/ctx"} {
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", path}
		if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: rc.block(kv...), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		<-started
	}
	// Reset a running one: its handler still runs, so the next waits in the queue.
	_ = rc.fr.WriteRSTStream(5, http2.ErrCodeCancel)
	rc.get(7, true)
	rc.pingRoundTrip([8]byte{7})
	_ = rc.c.Close()
	settleGoroutines(t, base)
}

// TestResetQueuedStreamGivesItsBytesBack: the request bytes a stream
// received while it waited in the queue (MaxConcurrentStreams handlers
// running) go back to the connection window when the client resets it;
// they were never returned (the stream's handler never runs to close its
// body), so every such reset shrank the connection window for good.
func TestResetQueuedStreamGivesItsBytesBack(t *testing.T) {
	const sent = 60000
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	addr := serve(t, &Server{MaxConcurrentStreams: 1, ConnWindow: initialWindow, StreamWindow: initialWindow, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release // ignores its context, as a slow handler does
	})})
	rc := dialRaw(t, addr)
	post := func(id uint32) {
		kv := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/"}
		if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(kv...), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	// The connection window as the client sees it.
	window := int64(initialWindow)
	readUpdates := func(ping byte) {
		if err := rc.fr.WritePing(false, [8]byte{ping}); err != nil {
			t.Fatal(err)
		}
		rc.readUntil("PING ACK", func(f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					window += int64(f.Increment)
				}
			case *http2.PingFrame:
				return f.IsAck() && f.Data == [8]byte{ping}
			}
			return false
		})
	}
	post(1)
	<-started
	// Its handler goes on: stream 3 waits in the queue.
	if err := rc.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	post(3)
	for n := 0; n < sent; n += maxFrameSize {
		k := min(maxFrameSize, sent-n)
		if err := rc.fr.WriteData(3, false, make([]byte, k)); err != nil {
			t.Fatal(err)
		}
		window -= int64(k)
	}
	readUpdates(1)
	if err := rc.fr.WriteRSTStream(3, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	readUpdates(2)
	// The server may hold back less than a quarter of the window.
	if window < initialWindow-initialWindow/4 {
		t.Fatalf("connection window %d after the streams were reset, want at least %d", window, initialWindow-initialWindow/4)
	}
}

// TestWindowUpdateErrors: RFC 9113 6.9: a zero increment is a connection
// PROTOCOL_ERROR on the connection and a stream one on a stream; a stream
// window beyond 2^31-1 is a stream FLOW_CONTROL_ERROR, and so is a
// connection window beyond it for the connection.
func TestWindowUpdateErrors(t *testing.T) {
	blocked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tests := []struct {
		name string
		run  func(rc *rawClient)
	}{
		{"zero increment on the connection", func(rc *rawClient) {
			_ = rc.fr.WriteWindowUpdate(0, 0)
			rc.readUntil("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
		}},
		{"zero increment on a stream", func(rc *rawClient) {
			rc.get(1, true)
			_ = rc.fr.WriteWindowUpdate(1, 0)
			rc.readUntil("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
		}},
		{"a stream window beyond 2^31-1", func(rc *rawClient) {
			rc.get(1, true)
			_ = rc.fr.WriteWindowUpdate(1, 1<<31-1)
			rc.readUntil("RST_STREAM FLOW_CONTROL_ERROR", isRST(1, http2.ErrCodeFlowControl))
		}},
		{"a connection window beyond 2^31-1 in steps", func(rc *rawClient) {
			_ = rc.fr.WriteWindowUpdate(0, 1<<30)
			_ = rc.fr.WriteWindowUpdate(0, 1<<30)
			rc.readUntil("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
		}},
		{"SETTINGS_INITIAL_WINDOW_SIZE taking a stream window beyond 2^31-1", func(rc *rawClient) {
			rc.get(1, true)
			_ = rc.fr.WriteWindowUpdate(1, 1<<31-1-initialWindow)
			_ = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: initialWindow + 1})
			rc.readUntil("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, serve(t, &Server{Handler: blocked}))
			rc.fr.AllowIllegalWrites = true
			tc.run(rc)
		})
	}
}

// TestWriteBeyondContentLength: a handler's write past the Content-Length
// it declared fails and sends nothing (a response body longer than its
// Content-Length is malformed, RFC 9113 8.1.1), as net/http's.
func TestWriteBeyondContentLength(t *testing.T) {
	errs := make(chan error, 2)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, err := io.WriteString(w, "hello world")
		errs <- err
		_, err = w.Write([]byte("hello"))
		errs <- err
	})})
	resp, err := h2cClient(t).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "hello" || resp.ContentLength != 5 {
		t.Errorf("body %q (length %d), %v; want hello", body, resp.ContentLength, err)
	}
	if err := <-errs; err == nil {
		t.Error("writing 11 bytes with a Content-Length of 5 succeeded")
	}
	if err := <-errs; err != nil {
		t.Errorf("writing the 5 declared bytes: %v", err)
	}
}
