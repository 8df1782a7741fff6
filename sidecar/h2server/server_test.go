package h2server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// waitFor bounds what a test waits for; it is not an assertion on time.
const waitFor = 20 * time.Second

// serve starts s on a loopback listener; every accepted connection is
// served with ServeConn.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.ServeConn(context.Background(), c, nil) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		_ = s.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// h2cClient is x/net's HTTP/2 client speaking h2c with prior knowledge.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestRoundTrips(t *testing.T) {
	big := make([]byte, 3<<20+17)
	_, _ = rand.Read(big)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		req     func(url string) *http.Request
		check   func(t *testing.T, resp *http.Response, body []byte)
	}{
		{
			name: "GET, small body gets a Content-Length",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.ProtoMajor != 2 || r.Method != http.MethodGet || r.URL.Path != "/a" || r.URL.RawQuery != "q=1" || r.Host == "" {
					http.Error(w, "bad request fields", http.StatusTeapot)
					return
				}
				w.Header().Set("X-Got", r.Header.Get("X-Custom"))
				_, _ = io.WriteString(w, "hello")
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, url+"/a?q=1", nil)
				r.Header.Set("X-Custom", "v1")
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if resp.StatusCode != http.StatusOK || string(body) != "hello" || resp.Header.Get("X-Got") != "v1" || resp.ContentLength != 5 {
					t.Errorf("got %d %q X-Got=%q length %d", resp.StatusCode, body, resp.Header.Get("X-Got"), resp.ContentLength)
				}
			},
		},
		{
			name: "POST echo larger than every window, both ways",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(w, r.Body)
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodPost, url+"/echo", bytes.NewReader(big))
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if !bytes.Equal(body, big) {
					t.Errorf("echo: got %d bytes, want %d (equal %v)", len(body), len(big), bytes.Equal(body, big))
				}
			},
		},
		{
			name: "trailers both ways",
			handler: func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Header().Set("Trailer", "Grpc-Status")
				w.Header().Set("Content-Type", "application/grpc")
				_, _ = w.Write(b)
				w.(http.Flusher).Flush()
				w.Header().Set("Grpc-Status", r.Trailer.Get("X-Req-Trailer"))
				w.Header().Set(http.TrailerPrefix+"X-Undeclared", "u")
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodPost, url+"/t", io.MultiReader(strings.NewReader("body")))
				r.Trailer = http.Header{"X-Req-Trailer": {"7"}}
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if string(body) != "body" || resp.Trailer.Get("Grpc-Status") != "7" || resp.Trailer.Get("X-Undeclared") != "u" {
					t.Errorf("body %q trailers %v", body, resp.Trailer)
				}
			},
		},
		{
			name: "HEAD has no body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				_, _ = io.WriteString(w, "hello")
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodHead, url+"/", nil)
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if len(body) != 0 || resp.ContentLength != 5 {
					t.Errorf("HEAD: body %q, length %d", body, resp.ContentLength)
				}
			},
		},
		{
			name: "204 refuses a body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
				if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
					w.Header().Set(http.TrailerPrefix+"X-Err", "write did not fail")
				}
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, url+"/", nil)
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if resp.StatusCode != http.StatusNoContent || len(body) != 0 || resp.Trailer.Get("X-Err") != "" {
					t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Trailer)
				}
			},
		},
		{
			name: "a panicking handler resets its stream",
			handler: func(w http.ResponseWriter, r *http.Request) {
				panic(http.ErrAbortHandler)
			},
			req: func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, url+"/", nil)
				return r
			},
			check: nil, // the round trip fails
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, &Server{Handler: tc.handler})
			resp, err := h2cClient(t).Do(tc.req("http://" + addr))
			if tc.check == nil {
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatal("round trip succeeded, want a stream error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != 2 {
				t.Errorf("proto %s", resp.Proto)
			}
			tc.check(t, resp, body)
		})
	}
}

// TestFlushSendsAtOnce: a flushed chunk reaches the client while the
// handler waits for the client to have read it.
func TestFlushSendsAtOnce(t *testing.T) {
	read := make(chan struct{})
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "one")
		w.(http.Flusher).Flush()
		select {
		case <-read:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "two")
	})})
	resp, err := h2cClient(t).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "one" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(read)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "two" {
		t.Fatalf("rest %q", rest)
	}
}

// rawClient speaks frames to the server.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// settings the server sent.
	settings map[http2.SettingID]uint32
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	rc := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c), settings: map[http2.SettingID]uint32{}}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f := rc.read()
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	_ = sf.ForeachSetting(func(s http2.Setting) error { rc.settings[s.ID] = s.Val; return nil })
	if err := rc.fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) read() http2.Frame {
	rc.t.Helper()
	f, err := rc.fr.ReadFrame()
	if err != nil {
		rc.t.Fatalf("read frame: %v", err)
	}
	return f
}

// readUntil reads frames until match returns true.
func (rc *rawClient) readUntil(what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// block encodes header fields given as name, value pairs.
func (rc *rawClient) block(kv ...string) []byte {
	rc.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = rc.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), rc.hbuf.Bytes()...)
}

func (rc *rawClient) get(id uint32, end bool, extra ...string) {
	rc.t.Helper()
	kv := append([]string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}, extra...)
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(kv...), EndStream: end, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

func isGoAway(code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		g, ok := f.(*http2.GoAwayFrame)
		return ok && g.ErrCode == code
	}
}

func isRST(id uint32, code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == code
	}
}

func okHandler(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func TestConnectionFrames(t *testing.T) {
	tests := []struct {
		name string
		srv  *Server
		run  func(t *testing.T, rc *rawClient)
	}{
		{
			name: "server SETTINGS advertise the limits",
			srv:  &Server{Handler: http.HandlerFunc(okHandler), MaxConcurrentStreams: 7, MaxHeaderBytes: 5000, StreamWindow: 12345},
			run: func(t *testing.T, rc *rawClient) {
				want := map[http2.SettingID]uint32{http2.SettingMaxConcurrentStreams: 7, http2.SettingMaxHeaderListSize: 5000, http2.SettingInitialWindowSize: 12345}
				for id, v := range want {
					if rc.settings[id] != v {
						t.Errorf("%v = %d, want %d", id, rc.settings[id], v)
					}
				}
			},
		},
		{
			name: "SETTINGS and PING are acknowledged",
			run: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
				rc.readUntil("SETTINGS ACK", func(f http2.Frame) bool {
					s, ok := f.(*http2.SettingsFrame)
					return ok && s.IsAck()
				})
				data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
				_ = rc.fr.WritePing(false, data)
				rc.readUntil("PING ACK", func(f http2.Frame) bool {
					p, ok := f.(*http2.PingFrame)
					return ok && p.IsAck() && p.Data == data
				})
			},
		},
		{
			name: "a response within the peer's small window, then the rest after WINDOW_UPDATE",
			srv: &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write(bytes.Repeat([]byte("a"), 300))
			})},
			run: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
				rc.get(1, true)
				got := 0
				rc.readUntil("100 bytes", func(f http2.Frame) bool {
					if d, ok := f.(*http2.DataFrame); ok {
						got += len(d.Data())
					}
					return got >= 100
				})
				if got != 100 {
					t.Fatalf("got %d bytes in a 100-byte window", got)
				}
				_ = rc.fr.WriteWindowUpdate(1, 200)
				rc.readUntil("the rest", func(f http2.Frame) bool {
					if d, ok := f.(*http2.DataFrame); ok {
						got += len(d.Data())
						return d.StreamEnded()
					}
					return false
				})
				if got != 300 {
					t.Fatalf("got %d bytes, want 300", got)
				}
			},
		},
		{
			name: "header list over the limit is answered 431",
			srv:  &Server{Handler: http.HandlerFunc(okHandler), MaxHeaderBytes: 1000},
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, true, "x-big1", strings.Repeat("b", 400), "x-big2", strings.Repeat("b", 400), "x-big3", strings.Repeat("b", 400))
				f := rc.readUntil("HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
				if s := f.(*http2.MetaHeadersFrame).PseudoValue("status"); s != "431" {
					t.Fatalf("status %q, want 431", s)
				}
			},
		},
		{
			name: "CONTINUATION flood beyond the header limit ends the connection",
			srv:  &Server{Handler: http.HandlerFunc(okHandler), MaxHeaderBytes: 1000},
			run: func(t *testing.T, rc *rawClient) {
				kv := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
				for i := range 1000 {
					kv = append(kv, "x-big", strings.Repeat("b", 90+i%10))
				}
				block := rc.block(kv...)
				const frag = 512
				_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:frag]})
				errc := make(chan error, 1)
				go func() {
					var err error
					for rest := block[frag:]; len(rest) > 0 && err == nil; {
						n := min(frag, len(rest))
						err = rc.fr.WriteContinuation(1, n == len(rest), rest[:n])
						rest = rest[n:]
					}
					errc <- err
				}()
				rc.readUntil("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
				if _, err := rc.fr.ReadFrame(); err == nil {
					t.Fatal("connection still open after GOAWAY")
				}
				if err := <-errc; err != nil {
					t.Logf("the flood stopped: %v", err)
				}
			},
		},
		{
			name: "DATA beyond the stream window is a stream FLOW_CONTROL_ERROR",
			srv:  &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }), StreamWindow: 1000},
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, false)
				_ = rc.fr.WriteData(1, false, make([]byte, 1001))
				rc.readUntil("RST_STREAM FLOW_CONTROL_ERROR", isRST(1, http2.ErrCodeFlowControl))
			},
		},
		{
			name: "DATA beyond the connection window is a connection FLOW_CONTROL_ERROR",
			srv:  &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }), ConnWindow: 70000, StreamWindow: 60000},
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, false)
				rc.get(3, false)
				_ = rc.fr.WriteData(1, false, make([]byte, 16384))
				_ = rc.fr.WriteData(1, false, make([]byte, 16384))
				_ = rc.fr.WriteData(1, false, make([]byte, 16384))
				_ = rc.fr.WriteData(3, false, make([]byte, 16384))
				_ = rc.fr.WriteData(3, false, make([]byte, 16384))
				rc.readUntil("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
			},
		},
		{
			name: "WINDOW_UPDATE beyond 2^31-1 is a connection FLOW_CONTROL_ERROR",
			run: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteWindowUpdate(0, 1<<31-1)
				rc.readUntil("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
			},
		},
		{
			name: "DATA on an idle stream is a connection PROTOCOL_ERROR",
			run: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteData(5, true, []byte("x"))
				rc.readUntil("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
			},
		},
		{
			name: "a connection-specific header field is a malformed request",
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, true, "connection", "keep-alive")
				rc.readUntil("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
				rc.get(3, true, "content-length", "2")
				rc.readUntil("RST_STREAM PROTOCOL_ERROR", isRST(3, http2.ErrCodeProtocol))
			},
		},
		{
			name: "a request body shorter than its Content-Length is malformed",
			srv: &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
			})},
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, false, "content-length", "5")
				_ = rc.fr.WriteData(1, true, []byte("abc"))
				rc.readUntil("RST_STREAM PROTOCOL_ERROR", isRST(1, http2.ErrCodeProtocol))
			},
		},
		{
			name: "frames the client sent before it read the server's RST_STREAM are ignored",
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, false)
				rc.readUntil("RST_STREAM NO_ERROR after the response", isRST(1, http2.ErrCodeNo))
				_ = rc.fr.WriteData(1, false, []byte("late"))
				_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block("x-trailer", "t"), EndStream: true, EndHeaders: true})
				rc.get(3, true)
				rc.readUntil("the next response", func(f http2.Frame) bool {
					d, ok := f.(*http2.DataFrame)
					return ok && d.StreamID == 3 && d.StreamEnded()
				})
			},
		},
		{
			name: "Expect: 100-continue is answered at the first body read",
			srv: &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				_, _ = w.Write(b)
			})},
			run: func(t *testing.T, rc *rawClient) {
				kv := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/", "expect", "100-continue"}
				_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(kv...), EndHeaders: true})
				f := rc.readUntil("HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
				if s := f.(*http2.MetaHeadersFrame).PseudoValue("status"); s != "100" {
					t.Fatalf("status %q, want 100", s)
				}
				_ = rc.fr.WriteData(1, true, []byte("body"))
				f = rc.readUntil("HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
				if s := f.(*http2.MetaHeadersFrame).PseudoValue("status"); s != "200" {
					t.Fatalf("status %q, want 200", s)
				}
			},
		},
		{
			name: "streams beyond MAX_CONCURRENT_STREAMS are refused",
			srv: &Server{MaxConcurrentStreams: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			})},
			run: func(t *testing.T, rc *rawClient) {
				rc.get(1, false)
				rc.get(3, false)
				rc.get(5, false)
				rc.readUntil("RST_STREAM REFUSED_STREAM", isRST(5, http2.ErrCodeRefusedStream))
			},
		},
		{
			name: "the server PINGs an idle peer",
			srv:  &Server{Handler: http.HandlerFunc(okHandler), SendPingTimeout: 10 * time.Millisecond, PingTimeout: time.Hour},
			run: func(t *testing.T, rc *rawClient) {
				f := rc.readUntil("PING", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() })
				_ = rc.fr.WritePing(true, f.(*http2.PingFrame).Data)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.srv
			if s == nil {
				s = &Server{Handler: http.HandlerFunc(okHandler)}
			}
			tc.run(t, dialRaw(t, serve(t, s)))
		})
	}
}

// TestResetStreamCancelsTheRequest: RST_STREAM from the client cancels the
// handler's context and fails its body read.
func TestResetStreamCancelsTheRequest(t *testing.T) {
	done := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		<-r.Context().Done()
		done <- err
	})})
	rc := dialRaw(t, addr)
	rc.get(1, false)
	_ = rc.fr.WriteData(1, false, []byte("partial"))
	_ = rc.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("body read ended without an error after RST_STREAM")
		}
	case <-time.After(waitFor):
		t.Fatal("handler not cancelled")
	}
}

// TestRapidReset: streams reset as soon as opened do not run more handlers
// than MAX_CONCURRENT_STREAMS; the queue behind them is bounded and the
// connection ends with ENHANCE_YOUR_CALM. Both ways a stream can be reset
// at once count: the client's RST_STREAM (CVE-2023-44487) and the
// server's own reset of a stream because of what the client sent, here a
// WINDOW_UPDATE beyond 2^31-1 ("MadeYouReset", CVE-2025-8671).
func TestRapidReset(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reset func(fr *http2.Framer, id uint32) error
	}{
		{"client RST_STREAM", func(fr *http2.Framer, id uint32) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) }},
		{"server reset (MadeYouReset)", func(fr *http2.Framer, id uint32) error { return fr.WriteWindowUpdate(id, 1<<31-1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 4
			release := make(chan struct{})
			var running, most atomic.Int32
			addr := serve(t, &Server{MaxConcurrentStreams: limit, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				<-release // ignores its context, as a slow handler does
				running.Add(-1)
			})})
			defer close(release)
			rc := dialRaw(t, addr)
			// Literal fields, so that the same block can be sent again.
			blk := rc.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
			flood := make(chan struct{})
			go func() {
				defer close(flood)
				for id := uint32(1); id < 2*(5*limit+10); id += 2 {
					if rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil ||
						tc.reset(rc.fr, id) != nil {
						return
					}
				}
			}()
			rc.readUntil("GOAWAY ENHANCE_YOUR_CALM", isGoAway(http2.ErrCodeEnhanceYourCalm))
			_ = rc.c.Close()
			<-flood
			if m := most.Load(); m > limit {
				t.Fatalf("%d handlers ran at once, limit %d", m, limit)
			}
		})
	}
}

// TestShutdown: GOAWAY first, the stream in flight completes, a new one is
// refused, the connection closes, Shutdown returns.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	})}
	rc := dialRaw(t, serve(t, s))
	rc.get(1, true)
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	g := rc.readUntil("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.LastStreamID != 1 || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("GOAWAY last %d code %v", g.LastStreamID, g.ErrCode)
	}
	rc.get(3, true)
	rc.readUntil("RST_STREAM REFUSED_STREAM", isRST(3, http2.ErrCodeRefusedStream))
	close(release)
	rc.readUntil("the response", func(f http2.Frame) bool {
		d, ok := f.(*http2.DataFrame)
		return ok && d.StreamID == 1 && d.StreamEnded() && string(d.Data()) == "done"
	})
	if _, err := rc.fr.ReadFrame(); err == nil {
		t.Fatal("connection open after its last stream")
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}
