package h2client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fakeServer is a scripted HTTP/2 peer: each accepted connection reads
// the client preface and runs script with a Framer over it.
type fakeServer struct {
	addr  string
	conns chan *fakeConn
}

type fakeConn struct {
	t    *testing.T
	nc   net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

func startFake(t *testing.T, settings ...http2.Setting) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{addr: ln.Addr().String(), conns: make(chan *fakeConn, 8)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			buf := make([]byte, len(http2.ClientPreface))
			if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != http2.ClientPreface {
				_ = nc.Close()
				continue
			}
			fc := &fakeConn{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
			fc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			fc.henc = hpack.NewEncoder(&fc.hbuf)
			_ = fc.fr.WriteSettings(settings...)
			fs.conns <- fc
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return fs
}

// readUntil reads frames until one matches (SETTINGS are acknowledged on
// the way); nil when the connection ends first.
func (fc *fakeConn) readUntil(match func(http2.Frame) bool) http2.Frame {
	for {
		f, err := fc.fr.ReadFrame()
		if err != nil {
			return nil
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = fc.fr.WriteSettingsAck()
		}
		if match(f) {
			return f
		}
	}
}

func isHeaders(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok }

func (fc *fakeConn) headers(id uint32, end bool, kv ...string) {
	fc.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = fc.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	_ = fc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: fc.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

// TestGoAwayNotProcessed: streams above GOAWAY's last stream id fail
// with ErrNotProcessed (a request with a body: the caller retries); one
// without a body goes again on a new connection by itself; the stream
// at or below it completes.
func TestGoAwayNotProcessed(t *testing.T) {
	fs := startFake(t)
	c := newClient(t)
	type result struct {
		resp *http.Response
		err  error
	}
	first := make(chan result, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, fs.addr, "/1", nil)) //nolint:bodyclose // read and closed below
		first <- result{resp, err}
	}()
	fc := <-fs.conns
	fc.readUntil(isHeaders) // stream 1
	second := make(chan result, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodPost, fs.addr, "/3", strings.NewReader("body"))) //nolint:bodyclose // fails: no body
		second <- result{resp, err}
	}()
	fc.readUntil(isHeaders) // stream 3
	third := make(chan result, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, fs.addr, "/5", nil)) //nolint:bodyclose // 204, NoBody
		third <- result{resp, err}
	}()
	fc.readUntil(isHeaders) // stream 5
	_ = fc.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	if r := <-second; !errors.Is(r.err, ErrNotProcessed) {
		t.Fatalf("stream above the last stream id: %v, want ErrNotProcessed", r.err)
	}
	// Stream 5 goes again, on a new connection.
	fc2 := <-fs.conns
	f := fc2.readUntil(isHeaders).(*http2.MetaHeadersFrame)
	if f.PseudoValue("path") != "/5" {
		t.Fatalf("retried %q, want /5", f.PseudoValue("path"))
	}
	fc2.headers(f.StreamID, true, ":status", "204")
	if r := <-third; r.err != nil || r.resp.StatusCode != 204 {
		t.Fatalf("retried request: %v", r.err)
	}
	fc.headers(1, false, ":status", "200")
	_ = fc.fr.WriteData(1, true, []byte("one"))
	r := <-first
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	if b, err := io.ReadAll(r.resp.Body); err != nil || string(b) != "one" {
		t.Fatalf("stream 1: %q, %v", b, err)
	}
	// The first connection, drained, is closed.
	if fc.readUntil(func(http2.Frame) bool { return false }) != nil {
		t.Fatal("unreachable")
	}
}

// TestRefusedStream: REFUSED_STREAM is ErrNotProcessed; a request
// without a body goes again.
func TestRefusedStream(t *testing.T) {
	fs := startFake(t)
	c := newClient(t)
	errc := make(chan error, 2)
	go func() {
		err := rtErr(c, newRequest(t, context.Background(), http.MethodPost, fs.addr, "/", strings.NewReader("b")))
		errc <- err
	}()
	fc := <-fs.conns
	f := fc.readUntil(isHeaders)
	_ = fc.fr.WriteRSTStream(f.Header().StreamID, http2.ErrCodeRefusedStream)
	if err := <-errc; !errors.Is(err, ErrNotProcessed) || !strings.Contains(err.Error(), "REFUSED_STREAM") {
		t.Fatalf("refused stream: %v", err)
	}
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil))
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	f = fc.readUntil(isHeaders)
	_ = fc.fr.WriteRSTStream(f.Header().StreamID, http2.ErrCodeRefusedStream)
	f = fc.readUntil(isHeaders)
	fc.headers(f.Header().StreamID, true, ":status", "200")
	if err := <-errc; err != nil {
		t.Fatalf("a refused request without a body, sent again: %v", err)
	}
}

// TestConnectionErrorFailsEveryStream: a protocol error of the peer (DATA
// on a stream never opened) gets GOAWAY and fails every stream.
func TestConnectionErrorFailsEveryStream(t *testing.T) {
	fs := startFake(t)
	c := newClient(t)
	errc := make(chan error, 3)
	fcs := make(chan *fakeConn, 1)
	for i := range 3 {
		go func() {
			err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil))
			errc <- err
		}()
		if i == 0 {
			fcs <- <-fs.conns
		}
	}
	fc := <-fcs
	for range 3 {
		fc.readUntil(isHeaders)
	}
	_ = fc.fr.WriteData(99, true, []byte("x"))
	ga, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if !ok || ga.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("GOAWAY %v", ga)
	}
	for range 3 {
		if err := <-errc; err == nil || errors.Is(err, ErrNotProcessed) {
			t.Fatalf("stream on a failed connection: %v", err)
		}
	}
}

// TestHeaderListSize: a request head over the peer's limit fails
// without being sent (the connection stays usable); a response head over
// the client's limit fails its request.
func TestHeaderListSize(t *testing.T) {
	fs := startFake(t, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1024})
	c := newClient(t, WithMaxHeaderBytes(512))
	errc := make(chan error, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, fs.addr, "/warm", nil))
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	fc := <-fs.conns
	f := fc.readUntil(isHeaders)
	fc.headers(f.Header().StreamID, true, ":status", "200")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	req := newRequest(t, context.Background(), http.MethodGet, fs.addr, "/big", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2000))
	if err := rtErr(c, req); !errors.Is(err, errHeaderListSize) {
		t.Fatalf("request over the peer's limit: %v", err)
	}
	go func() {
		err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/small", nil))
		errc <- err
	}()
	f = fc.readUntil(isHeaders).(*http2.MetaHeadersFrame)
	if p := f.(*http2.MetaHeadersFrame).PseudoValue("path"); p != "/small" {
		t.Fatalf("next request on the connection: %q", p)
	}
	kv := []string{":status", "200"}
	for range 10 {
		kv = append(kv, "x-big", strings.Repeat("b", 100))
	}
	fc.headers(f.Header().StreamID, true, kv...)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "header list") {
		t.Fatalf("response over the client's limit: %v", err)
	}
}

// TestPingTimeout: a peer that stops answering (no frame, no PING ACK)
// fails the connection and its streams.
func TestPingTimeout(t *testing.T) {
	fs := startFake(t)
	c := newClient(t, WithPing(10e6, 10e6)) // 10 ms: the outcome is checked, not the time
	errc := make(chan error, 1)
	go func() {
		err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil))
		errc <- err
	}()
	fc := <-fs.conns
	fc.readUntil(isHeaders)
	if _, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.PingFrame); return ok }).(*http2.PingFrame); !ok {
		t.Fatal("no PING")
	}
	if err := <-errc; !errors.Is(err, errPingTimeout) {
		t.Fatalf("stream on a connection whose PING timed out: %v", err)
	}
}

// TestSendWindow: DATA waits for the peer's windows: a stream window of
// 0 (SETTINGS) sends nothing until WINDOW_UPDATE, then exactly what the
// windows allow; a SETTINGS that lowers the initial window makes an open
// stream's window negative (RFC 9113 6.9.2).
func TestSendWindow(t *testing.T) {
	fs := startFake(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	c := newClient(t)
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodPost, fs.addr, "/", pr))
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	fc := <-fs.conns
	var id uint32
	acked := false
	fc.readUntil(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			id = f.StreamID
		case *http2.SettingsFrame:
			acked = acked || f.IsAck()
		}
		return id != 0 && acked
	})
	// The client applied the 0 window before it has a byte to send.
	go func() { _, _ = pw.Write(bytes.Repeat([]byte("x"), 100)) }()
	readData := func(want int, end bool) {
		t.Helper()
		d, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		if !ok || len(d.Data()) != want || d.StreamEnded() != end {
			t.Fatalf("DATA %v, want %d bytes (END_STREAM %v)", d, want, end)
		}
	}
	_ = fc.fr.WriteWindowUpdate(id, 30)
	readData(30, false)
	_ = fc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 20})
	readData(20, false)
	// Window 0 - 20 + 30.
	_ = fc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	_ = fc.fr.WriteWindowUpdate(id, 30)
	readData(10, false)
	_ = fc.fr.WriteWindowUpdate(id, 1000)
	readData(40, false)
	_ = pw.Close()
	readData(0, true)
	fc.headers(id, true, ":status", "200")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestReceiveWindow: a caller that does not read stops the peer at the
// stream window: no WINDOW_UPDATE for the stream until it reads; DATA
// beyond the window is a stream error (FLOW_CONTROL_ERROR).
func TestReceiveWindow(t *testing.T) {
	const window = 16 << 10
	fs := startFake(t)
	c := newClient(t, WithWindows(window, 1<<20))
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil)) //nolint:bodyclose // read below
		if err != nil {
			t.Error(err)
		}
		respc <- resp
	}()
	fc := <-fs.conns
	id := fc.readUntil(isHeaders).Header().StreamID
	fc.headers(id, false, ":status", "200")
	chunk := bytes.Repeat([]byte("y"), window)
	_ = fc.fr.WriteData(id, false, chunk)
	resp := <-respc
	defer resp.Body.Close()
	buf := make([]byte, window)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	wu, ok := fc.readUntil(func(f http2.Frame) bool { w, ok := f.(*http2.WindowUpdateFrame); return ok && w.StreamID == id }).(*http2.WindowUpdateFrame)
	if !ok || wu.Increment != window {
		t.Fatalf("stream WINDOW_UPDATE %v, want %d after reading the window", wu, window)
	}
	// Beyond the window the stream is reset.
	_ = fc.fr.WriteData(id, false, chunk)
	_ = fc.fr.WriteData(id, false, []byte("z"))
	rst, ok := fc.readUntil(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if !ok || rst.ErrCode != http2.ErrCodeFlowControl {
		t.Fatalf("RST_STREAM %v, want FLOW_CONTROL_ERROR", rst)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a reset stream's body ended without an error")
	}
}

// TestFailedBeforeSent: a connection that fails between getConn and the
// request's HEADERS sent nothing of it: ErrNotProcessed, and a request
// without a body goes again on a new connection.
func TestFailedBeforeSent(t *testing.T) {
	fs := startFake(t)
	c := newClient(t)
	cc, err := c.getConn(context.Background(), fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	cc.fail(errors.New("test: connection failed"))
	if _, err := cc.roundTrip(newRequest(t, context.Background(), http.MethodPost, fs.addr, "/", strings.NewReader("b"))); !errors.Is(err, ErrNotProcessed) { //nolint:bodyclose // fails
		t.Fatalf("request on a connection that failed before it was sent: %v", err)
	}
	// The failed connection takes no new request: the next goes on a new one.
	cc, err = c.getConn(context.Background(), fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	cc.fail(errors.New("test: connection failed"))
	errc := make(chan error, 1)
	go func() { errc <- rtErr(c, newRequest(t, context.Background(), http.MethodGet, fs.addr, "/", nil)) }()
	fc := <-fs.conns
	f := fc.readUntil(isHeaders)
	fc.headers(f.Header().StreamID, true, ":status", "200")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
