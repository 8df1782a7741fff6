package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

type ctxKey struct{}

// start serves h on a loopback listener (HTTP/1.1 and h2c) until the test
// ends; cfg tweaks the http.Server configuration.
func start(t *testing.T, h http.Handler, cfg ...func(*http.Server, *Server)) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h, cfg...), nil
}

func serveOn(t *testing.T, ln net.Listener, h http.Handler, cfg ...func(*http.Server, *Server)) string {
	t.Helper()
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	hs := &http.Server{
		Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, "conn "+c.RemoteAddr().String())
		},
	}
	s := New(hs)
	for _, f := range cfg {
		f(hs, s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// raw sends req on a new TCP connection and returns the connection and a
// reader of what comes back.
func raw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// answer is a response read whole.
type answer struct {
	StatusCode    int
	Proto         string
	Header        http.Header
	ContentLength int64
	Close         bool
	// TransferEncoding and Trailer: as the net/http client read them.
	TransferEncoding []string
	Trailer          http.Header
}

func summary(resp *http.Response) answer {
	return answer{resp.StatusCode, resp.Proto, resp.Header, resp.ContentLength, resp.Close, resp.TransferEncoding, resp.Trailer}
}

func readResp(t *testing.T, br *bufio.Reader, method string) (answer, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return summary(resp), string(b)
}

// closed reports whether the server closed c (EOF before any byte).
func closed(c net.Conn, br *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestRequestsAndKeepAlive(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s %s host=%s len=%d te=%v body=%s ctx=%v remote=%v", r.Method, r.URL.Path, r.URL.RawQuery, r.Host,
			r.ContentLength, r.TransferEncoding, b, r.Context().Value(ctxKey{}) != nil, r.RemoteAddr != "")
	}))
	client := newClient(t)
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	for i, tc := range []struct {
		method, path string
		body         io.Reader
		want         string
	}{
		{"GET", "/a/b?x=1&y=%20", nil, "GET /a/b x=1&y=%20 host=HOST len=0 te=[] body= ctx=true remote=true"},
		{"POST", "/p", strings.NewReader("hello"), "POST /p  host=HOST len=5 te=[] body=hello ctx=true remote=true"},
		{"PUT", "/c", io.MultiReader(strings.NewReader("chunk"), strings.NewReader("ed")), "PUT /c  host=HOST len=-1 te=[chunked] body=chunked ctx=true remote=true"},
		{"GET", "/%41%2Fb", nil, "GET /A/b  host=HOST len=0 te=[] body= ctx=true remote=true"},
	} {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), tc.method, "http://"+addr+tc.path, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := strings.ReplaceAll(tc.want, "HOST", addr)
		if string(b) != want || resp.StatusCode != 200 {
			t.Errorf("%d: got %d %q, want %q", i, resp.StatusCode, b, want)
		}
		if resp.ContentLength != int64(len(want)) || resp.Header.Get("Date") == "" {
			t.Errorf("%d: Content-Length %d, Date %q", i, resp.ContentLength, resp.Header.Get("Date"))
		}
	}
	for i, r := range reused[1:] {
		if !r {
			t.Errorf("request %d: new connection, want keep-alive", i+1)
		}
	}
}

// countConn counts the writes to a connection.
type countConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c, &l.writes}, nil
}

func TestResponseFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countListener{Listener: ln}
	big := strings.Repeat("x", 10000)
	addr := serveOn(t, cl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/known":
			w.Header().Set("Content-Length", "1024")
			_, _ = w.Write([]byte(strings.Repeat("k", 512)))
			_, _ = w.Write([]byte(strings.Repeat("k", 512)))
		case "/small":
			_, _ = io.WriteString(w, "small")
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/flush":
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		case "/short":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "abc")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("write to 204 allowed")
			}
		case "/toolong":
			w.Header().Set("Content-Length", "2")
			if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
				panic("write past Content-Length allowed")
			}
			_, _ = io.WriteString(w, "ab")
		}
	}))
	client := newClient(t)
	get := func(path string) (answer, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return summary(resp), string(b)
	}
	get("/small") // connect
	before := cl.writes.Load()
	resp, body := get("/known")
	if n := cl.writes.Load() - before; n != 1 || len(body) != 1024 || resp.ContentLength != 1024 {
		t.Errorf("/known: %d writes, %d bytes, Content-Length %d; want 1 write of head and body", n, len(body), resp.ContentLength)
	}
	if resp, body := get("/small"); resp.ContentLength != 5 || body != "small" || resp.TransferEncoding != nil {
		t.Errorf("/small: Content-Length %d, TE %v, %q", resp.ContentLength, resp.TransferEncoding, body)
	}
	if resp, body := get("/big"); resp.ContentLength != -1 || body != big || len(resp.TransferEncoding) != 1 {
		t.Errorf("/big: Content-Length %d, TE %v, %d bytes", resp.ContentLength, resp.TransferEncoding, len(body))
	}
	if resp, body := get("/flush"); resp.ContentLength != -1 || body != "ab" {
		t.Errorf("/flush: Content-Length %d, %q", resp.ContentLength, body)
	}
	if resp, body := get("/trailers"); body != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "late" {
		t.Errorf("/trailers: %q, trailer %v", body, resp.Trailer)
	}
	if resp, _ := get("/nocontent"); resp.StatusCode != 204 {
		t.Errorf("/nocontent: %d", resp.StatusCode)
	}
	if _, body := get("/toolong"); body != "ab" {
		t.Errorf("/toolong: %q", body)
	}
	// A response shorter than its Content-Length closes the connection.
	_, br := raw(t, addr, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	b, _ := io.ReadAll(br)
	if string(b) != "abc" {
		t.Errorf("/short: %q, want abc then close", b)
	}
	// HEAD: the length, no body.
	_, br = raw(t, addr, "HEAD /small HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := readResp(t, br, "HEAD"); resp.ContentLength != 5 || body != "" {
		t.Errorf("HEAD: Content-Length %d, %q", resp.ContentLength, body)
	}
	if _, body := readResp(t, br, "GET"); body != "small" {
		t.Errorf("GET after HEAD: %q", body)
	}
}

func TestRequestTrailers(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %v", b, r.Trailer)
	}))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	req.Trailer = http.Header{"X-T": nil}
	go func() {
		_, _ = io.WriteString(pw, "data")
		req.Trailer.Set("X-T", "v")
		pw.Close()
	}()
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "data map[X-T:[v]]" {
		t.Errorf("got %q", b)
	}
}

func TestExpectContinue(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	}))
	// The body goes only after the 100.
	c, br := raw(t, addr, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want a 100", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100: %q", l)
	}
	_, _ = io.WriteString(c, "body")
	if _, body := readResp(t, br, "POST"); body != "got body" {
		t.Errorf("got %q", body)
	}
	// Refused without reading: no 100, and the connection closes (the
	// client may or may not send the body).
	c, br = raw(t, addr, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != 403 || !resp.Close {
		t.Errorf("refused: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !closed(c, br) {
		t.Error("connection left open after a refused Expect: 100-continue")
	}
	// The net/http client sends Expect itself for a body when asked.
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "http://"+addr+"/ok", strings.NewReader("abc"))
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "got abc" {
		t.Errorf("client: %q", b)
	}
	_, br = raw(t, addr, "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx")
	if resp, _ := readResp(t, br, "POST"); resp.StatusCode != http.StatusExpectationFailed {
		t.Errorf("unknown expectation: %d", resp.StatusCode)
	}
}

func TestHTTP10AndConnectionClose(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "s")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "t")
			return
		}
		fmt.Fprintf(w, "%s close=%v host=%q", r.Proto, r.Close, r.Host)
	}))
	c, br := raw(t, addr, "GET / HTTP/1.0\r\n\r\n")
	resp, body := readResp(t, br, "GET")
	if resp.Proto != "HTTP/1.0" || body != `HTTP/1.0 close=true host=""` {
		t.Errorf("1.0: %s %q", resp.Proto, body)
	}
	if !closed(c, br) {
		t.Error("HTTP/1.0 connection left open")
	}
	_, br = raw(t, addr, "GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\nGET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body = readResp(t, br, "GET")
	if resp.Header.Get("Connection") != "keep-alive" || body != `HTTP/1.0 close=false host="h"` {
		t.Errorf("1.0 keep-alive: %v %q", resp.Header, body)
	}
	// Unknown length on HTTP/1.0: until close.
	if resp, body := readResp(t, br, "GET"); body != "st" || resp.ContentLength != -1 {
		t.Errorf("1.0 stream: %q, %d", body, resp.ContentLength)
	}
	c, br = raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := readResp(t, br, "GET"); !resp.Close {
		t.Error("no Connection: close in the answer")
	}
	if !closed(c, br) {
		t.Error("Connection: close left the connection open")
	}
}

func TestRequestTargets(t *testing.T) {
	type seen struct {
		method, host, uri, scheme, urlHost, path, rawQuery string
	}
	got := make(chan seen, 1)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.Host, r.RequestURI, r.URL.Scheme, r.URL.Host, r.URL.Path, r.URL.RawQuery}
	}))
	for _, tc := range []struct {
		req  string
		want seen
	}{
		{"GET http://payment.shop:8080/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", seen{"GET", "payment.shop:8080", "http://payment.shop:8080/x?q=1", "http", "payment.shop:8080", "/x", "q=1"}},
		{"GET /p%20q HTTP/1.1\r\nHost: a.b\r\n\r\n", seen{"GET", "a.b", "/p%20q", "", "", "/p q", ""}},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", seen{"OPTIONS", "a", "*", "", "", "*", ""}},
		{"CONNECT db.example:5432 HTTP/1.1\r\n\r\n", seen{"CONNECT", "db.example:5432", "db.example:5432", "", "db.example:5432", "", ""}},
	} {
		_, br := raw(t, addr, tc.req)
		if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
			t.Errorf("%q: status %d", tc.req, resp.StatusCode)
			continue
		}
		if s := <-got; s != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.req, s, tc.want)
		}
	}
	// The net/http client using the server as its HTTP proxy.
	pu, _ := url.Parse("http://" + addr)
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://payment.shop:8080/pay")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; s.host != "payment.shop:8080" || s.path != "/pay" {
		t.Errorf("proxy request: %+v", s)
	}
}

func TestMalformedAndLimits(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(hs *http.Server, _ *Server) {
		hs.MaxHeaderBytes = 4096
	})
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
		{"garbage", "hello\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"bad content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400},
		{"smuggling", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"http/3", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
		{"control byte", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := raw(t, addr, tc.req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if !closed(c, br) {
				t.Error("connection left open")
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(hs *http.Server, _ *Server) {
		hs.ReadHeaderTimeout = 50 * time.Millisecond
		hs.IdleTimeout = 50 * time.Millisecond
	})
	// A head that never ends.
	c, br := raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n")
	if !closed(c, br) {
		t.Error("slow head: connection left open")
	}
	// An idle keep-alive connection.
	c, br = raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, br, "GET")
	if !closed(c, br) {
		t.Error("idle connection left open")
	}
}

// unwrapWriter wraps the ResponseWriter as the telemetry package does.
type unwrapWriter struct{ http.ResponseWriter }

func (u unwrapWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestConnectHijack(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w = unwrapWriter{w}
		if r.Method != http.MethodConnect || r.Host != "up.example:443" && r.Host != "duplex.example:443" {
			http.Error(w, "not a CONNECT", 400)
			return
		}
		if r.URL.Query().Get("x") != "" || r.Host == "duplex.example:443" {
			// As the inbound's tcp.go: no hijack, the body is the stream.
			rc := http.NewResponseController(w)
			_ = rc.EnableFullDuplex()
			w.WriteHeader(http.StatusOK)
			_ = rc.Flush()
			buf := make([]byte, 64)
			for {
				n, err := r.Body.Read(buf)
				if n > 0 {
					_, _ = w.Write([]byte(strings.ToUpper(string(buf[:n]))))
					_ = rc.Flush()
				}
				if err != nil {
					return
				}
			}
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		_ = brw.Flush()
		// Echo upper-cased until EOF, with what came with the head.
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				_, _ = conn.Write([]byte(strings.ToUpper(string(buf[:n]))))
			}
			if err != nil {
				return
			}
		}
	}))
	for _, host := range []string{"up.example:443", "duplex.example:443"} {
		c, br := raw(t, addr, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\n\r\nearly")
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", host, resp.StatusCode)
		}
		_, _ = io.WriteString(c, "-late")
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(br)
		resp.Body.Close()
		if string(b) != "EARLY-LATE" {
			t.Errorf("%s: tunnel: %q", host, b)
		}
	}
}

func TestClientDisconnectCancelsContext(t *testing.T) {
	canceled := make(chan string, 2)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			canceled <- r.URL.Path
		case <-time.After(20 * time.Second):
			canceled <- "not canceled"
		}
	}), func(_ *http.Server, s *Server) { s.WatchDelay = time.Millisecond })
	for _, req := range []string{
		"GET /get HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req)
		c.Close()
		if got := <-canceled; got == "not canceled" {
			t.Errorf("%q: context not canceled after the client closed", req)
		}
	}
}

func TestSlowHandlerPipelined(t *testing.T) {
	// The watch's background read takes a byte of the next request; it
	// must come back.
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(50 * time.Millisecond)
			if r.Context().Err() != nil {
				http.Error(w, "canceled", 500)
				return
			}
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	}), func(_ *http.Server, s *Server) { s.WatchDelay = time.Millisecond })
	c, br := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(20 * time.Millisecond) // the watch is armed
	_, _ = io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readResp(t, br, "GET"); body != "GET /slow" {
		t.Errorf("first: %q", body)
	}
	if _, body := readResp(t, br, "GET"); body != "GET /next" {
		t.Errorf("pipelined: %q", body)
	}
}

func TestPanics(t *testing.T) {
	var logged sync.Mutex
	var logs strings.Builder
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}), func(hs *http.Server, _ *Server) {
		hs.ErrorLog = newLogger(func(s string) { logged.Lock(); logs.WriteString(s); logged.Unlock() })
	})
	for _, p := range []string{"/abort", "/boom"} {
		c, br := raw(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if !closed(c, br) {
			t.Errorf("%s: connection left open", p)
		}
	}
	logged.Lock()
	defer logged.Unlock()
	if !strings.Contains(logs.String(), "boom") || strings.Contains(logs.String(), "abort") {
		t.Errorf("log: %q", logs.String())
	}
}

func TestTLSAndHTTP2(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s tls=%v ctx=%v", r.Proto, r.TLS != nil, r.Context().Value(ctxKey{}) != nil)
	})
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	certs := ts.TLS.Certificates
	client := ts.Client()
	ts.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: certs, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
	addr := serveOn(t, tln, h, func(hs *http.Server, _ *Server) { hs.Protocols.SetHTTP2(true) })
	tr := client.Transport.(*http.Transport)
	for _, tc := range []struct {
		name string
		h2   bool
		want string
	}{{"h2", true, "HTTP/2.0 tls=true ctx=true"}, {"http/1.1", false, "HTTP/1.1 tls=true ctx=true"}} {
		t2 := tr.Clone()
		p := new(http.Protocols)
		p.SetHTTP1(!tc.h2)
		p.SetHTTP2(tc.h2)
		t2.Protocols = p
		t2.TLSClientConfig.NextProtos = nil
		resp, err := (&http.Client{Transport: t2}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t2.CloseIdleConnections()
		if string(b) != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, b, tc.want)
		}
	}
	// h2c with prior knowledge on plaintext.
	addr2, _ := start(t, h)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Transport{Protocols: p}
	defer h2c.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2c}).Get("http://" + addr2 + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0 tls=false ctx=true" {
		t.Errorf("h2c: %q", b)
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	s := New(&http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})})
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	idle, ibr := raw(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResp(t, ibr, "GET")
	active, abr := raw(t, addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if !closed(idle, ibr) {
		t.Error("idle connection left open")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("new connection accepted after Shutdown")
	}
	close(release)
	resp, body := readResp(t, abr, "GET")
	if body != "done" || !resp.Close {
		t.Errorf("active: %q close=%v", body, resp.Close)
	}
	if !closed(active, abr) {
		t.Error("active connection left open after its response")
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestClose(t *testing.T) {
	entered := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // the client's connection is closed under it
	})})
	s.WatchDelay = time.Millisecond
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, br := raw(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if !closed(c, br) {
		t.Error("active connection left open by Close")
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(&http.Server{Handler: http.NotFoundHandler()})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("listener left open")
	}
}

// TestHTTP2SettingsKept: the h2c connection is served by Config as it is
// configured (its HTTP2 settings reach the client).
func TestHTTP2SettingsKept(t *testing.T) {
	addr, _ := start(t, http.NotFoundHandler(), func(hs *http.Server, _ *Server) {
		hs.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 7}
	})
	c, br := raw(t, addr, h2Preface)
	fr := http2.NewFramer(c, br)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			continue
		}
		if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 7 {
			t.Errorf("MAX_CONCURRENT_STREAMS %d (%v), want 7", v, ok)
		}
		return
	}
}

// TestKeepAliveRequestsIndependent: on one keep-alive connection, a
// response's header map starts empty although the connection reuses the
// last one, and what a handler kept of its request (r, r.URL, r.Header,
// r.Context()) is unchanged by the next request.
func TestKeepAliveRequestsIndependent(t *testing.T) {
	keptc := make(chan *http.Request, 1)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(w.Header()); n != 0 {
			t.Errorf("%s: response header starts with %d fields: %v", r.URL.Path, n, w.Header())
		}
		if r.URL.Path == "/a" {
			keptc <- r
			w.Header().Set("X-Only-A", "1")
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("X-T", "t")
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	c, br := raw(t, addr, "GET /a?q=1 HTTP/1.1\r\nHost: x\r\nX-Id: a\r\n\r\n")
	if a, body := readResp(t, br, "GET"); body != "/a" || a.Header.Get("X-Only-A") != "1" {
		t.Fatalf("first: %q %v", body, a.Header)
	}
	_, _ = io.WriteString(c, "GET http://y/b HTTP/1.1\r\nHost: y\r\nX-Id: b\r\n\r\n")
	a, body := readResp(t, br, "GET")
	if body != "/b" || a.Header.Get("X-Only-A") != "" || len(a.Trailer) != 0 || a.TransferEncoding != nil {
		t.Errorf("second: %q %v trailer %v te %v", body, a.Header, a.Trailer, a.TransferEncoding)
	}
	kept := <-keptc
	if kept.URL.String() != "/a?q=1" || kept.Host != "x" || kept.Header.Get("X-Id") != "a" || kept.Context().Err() == nil {
		t.Errorf("kept request changed: url %q host %q X-Id %q ctx err %v", kept.URL, kept.Host, kept.Header.Get("X-Id"), kept.Context().Err())
	}
}

// ServeConn serves the connection on the caller's goroutine: it returns
// only once the connection ended, and refuses (closing it) once the
// server was shut down.
func TestServeConn(t *testing.T) {
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})})
	client, server := net.Pipe()
	served := make(chan bool, 1)
	go func() { served <- s.ServeConn(server) }()
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(client)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	// The connection is kept alive: ServeConn is still serving it.
	select {
	case ok := <-served:
		t.Fatalf("ServeConn returned (%v) while its connection was open", ok)
	default:
	}
	client.Close()
	if ok := <-served; !ok {
		t.Fatal("ServeConn reported the connection refused")
	}

	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	client, server = net.Pipe()
	defer client.Close()
	if s.ServeConn(server) {
		t.Fatal("ServeConn served a connection after Shutdown")
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("refused connection: read %v, want it closed", err)
	}
}
