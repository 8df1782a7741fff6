package h1client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func tcpDial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// echoServer is a net/http server that answers with what it received:
// method, target, Host, Content-Length and Transfer-Encoding as seen in
// headers, the body's length and hash, the body itself when ?echo is set.
func echoServer(t *testing.T) (*countingListener, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server: read body: %v", err)
		}
		h := w.Header()
		h.Set("X-Method", r.Method)
		h.Set("X-Target", r.RequestURI)
		h.Set("X-Host", r.Host)
		h.Set("X-Te", strings.Join(r.TransferEncoding, ","))
		h.Set("X-Cl", fmt.Sprint(r.ContentLength))
		h.Set("X-Len", fmt.Sprint(len(b)))
		h.Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(b)))
		h.Set("X-Trailer", r.Trailer.Get("X-Checksum"))
		if r.URL.Query().Has("echo") {
			_, _ = w.Write(b)
		}
	}))
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	return cl, srv.Listener.Addr().String()
}

func newRequest(t *testing.T, method, addr, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+target, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// onlyReader hides everything but Read (no WriterTo, no length).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestRequestsAgainstNetHTTP(t *testing.T) {
	ln, addr := echoServer(t)
	c := New(tcpDial)
	defer c.CloseIdleConnections()
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 bytes: streamed
	mid := bytes.Repeat([]byte("x"), 20000)                // inline, over the buffer
	for _, tc := range []struct {
		name    string
		method  string
		target  string
		body    []byte
		unknown bool // ContentLength -1: chunked
		trailer bool
		wantTE  string
		wantCL  string
	}{
		{name: "GET", method: "GET", target: "/a/b?c=d&e", wantCL: "0"},
		{name: "escaped path", method: "GET", target: "/a%20b/%2F?q=%20", wantCL: "0"},
		{name: "POST empty", method: "POST", target: "/", wantCL: "0"},
		{name: "POST small", method: "POST", target: "/?echo", body: []byte("hello"), wantCL: "5"},
		{name: "PUT over the buffer", method: "PUT", target: "/?echo", body: mid, wantCL: "20000"},
		{name: "POST streamed", method: "POST", target: "/?echo", body: big, wantCL: "160000"},
		{name: "POST chunked", method: "POST", target: "/?echo", body: big, unknown: true, wantTE: "chunked", wantCL: "-1"},
		{name: "POST chunked with trailer", method: "POST", target: "/?echo", body: []byte("abc"), unknown: true, trailer: true, wantTE: "chunked", wantCL: "-1"},
		{name: "POST chunked empty", method: "POST", target: "/", body: []byte{}, unknown: true, wantTE: "chunked", wantCL: "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.unknown {
					body = onlyReader{body}
				}
			}
			req := newRequest(t, tc.method, addr, tc.target, body)
			req.Host = "app.example:8080"
			if tc.unknown {
				req.ContentLength = -1
			}
			if tc.trailer {
				req.Trailer = http.Header{"X-Checksum": nil}
				req.Body = trailerBody{req.Body, req.Trailer, "sum1"}
			}
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			h := resp.Header
			if h.Get("X-Method") != tc.method || h.Get("X-Target") != tc.target || h.Get("X-Host") != "app.example:8080" {
				t.Errorf("server saw %s %s Host %s", h.Get("X-Method"), h.Get("X-Target"), h.Get("X-Host"))
			}
			if h.Get("X-Te") != tc.wantTE || h.Get("X-Cl") != tc.wantCL {
				t.Errorf("server saw Transfer-Encoding %q Content-Length %s, want %q %s", h.Get("X-Te"), h.Get("X-Cl"), tc.wantTE, tc.wantCL)
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(tc.body)); h.Get("X-Sum") != want || h.Get("X-Len") != fmt.Sprint(len(tc.body)) {
				t.Errorf("server got %s bytes (sum %s), want %d", h.Get("X-Len"), h.Get("X-Sum"), len(tc.body))
			}
			if strings.Contains(tc.target, "echo") && got != string(tc.body) {
				t.Errorf("echoed body: %d bytes, want %d", len(got), len(tc.body))
			}
			if tc.trailer && h.Get("X-Trailer") != "sum1" {
				t.Errorf("server saw trailer %q, want sum1", h.Get("X-Trailer"))
			}
		})
	}
	if n := ln.n.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1 (keep-alive)", n)
	}
}

// trailerBody sets a trailer value when its body ends.
type trailerBody struct {
	io.ReadCloser
	t http.Header
	v string
}

func (b trailerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.t.Set("X-Checksum", b.v)
	}
	return n, err
}

func TestConcurrentRequestsPoolConnections(t *testing.T) {
	ln, addr := echoServer(t)
	c := New(tcpDial, WithMaxIdlePerHost(4))
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				body := fmt.Sprintf("%d-%d", i, j)
				resp, err := c.RoundTrip(newRequest(t, "POST", addr, "/?echo", strings.NewReader(body)))
				if err != nil {
					t.Error(err)
					return
				}
				if got := readAll(t, resp); got != body {
					t.Errorf("got %q, want %q", got, body)
				}
			}
		})
	}
	wg.Wait()
	if n := ln.n.Load(); n > 16 {
		t.Errorf("%d connections for 16 concurrent clients", n)
	}
	hp := c.host(addr)
	hp.mu.Lock()
	idle := len(hp.idle)
	hp.mu.Unlock()
	if idle > 4 {
		t.Errorf("%d idle connections, want at most 4", idle)
	}
}

// rawServer runs handle for each connection accepted on a loopback
// listener; it counts them.
func rawServer(t testing.TB, handle func(n int, c net.Conn, br *bufio.Reader)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var count atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(count.Add(1))
			wg.Go(func() {
				defer c.Close()
				handle(n, c, bufio.NewReader(c))
			})
		}
	})
	return ln.Addr().String(), &count
}

// readReq reads one request and its body from br.
func readReq(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// scripted answers each request on a connection with the next of resps,
// written in pieces of split bytes (0: at once), then closes.
func scripted(split int, resps ...string) func(int, net.Conn, *bufio.Reader) {
	return func(_ int, c net.Conn, br *bufio.Reader) {
		for _, r := range resps {
			if _, err := readReq(br); err != nil {
				return
			}
			b := []byte(r)
			for len(b) > 0 {
				n := len(b)
				if split > 0 {
					n = min(n, split)
				}
				if _, err := c.Write(b[:n]); err != nil {
					return
				}
				b = b[n:]
			}
		}
	}
}

func TestResponses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		resp    string
		split   int
		status  int
		body    string
		cl      int64
		trailer http.Header
		header  http.Header
		wantErr string
		reuse   bool // a second request goes over the same connection
	}{
		{
			name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello", status: 200, body: "hello", cl: 5,
			header: http.Header{"Content-Length": {"5"}, "X-A": {"1", "2"}}, reuse: true,
		},
		{
			name: "split in single bytes", split: 1, resp: "HTTP/1.1 201 Created\r\ncontent-length: 3\r\nx-weird-CASE:  v  \r\n\r\nabc", status: 201, body: "abc", cl: 3,
			header: http.Header{"Content-Length": {"3"}, "X-Weird-Case": {"v"}}, reuse: true,
		},
		{name: "bare LF", resp: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", status: 200, body: "ok", cl: 2, reuse: true},
		{
			name: "chunked with trailers", split: 7,
			resp:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, x-late\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Sum: 42\r\nX-Late: yes\r\n\r\n",
			status: 200, body: "abcdefg", cl: -1, trailer: http.Header{"X-Sum": {"42"}, "X-Late": {"yes"}}, header: http.Header{}, reuse: true,
		},
		{
			name: "chunked, undeclared trailer", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\nGrpc-Status: 0\r\n\r\n",
			status: 200, body: "z", cl: -1, trailer: http.Header{"Grpc-Status": {"0"}}, reuse: true,
		},
		{
			name: "chunked wins over content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
			status: 200, body: "hi", cl: -1, header: http.Header{}, reuse: true,
		},
		{name: "close-delimited", resp: "HTTP/1.1 200 OK\r\n\r\nuntil the end", status: 200, body: "until the end", cl: -1},
		{name: "HTTP/1.0", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", cl: 2},
		{name: "HTTP/1.0 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", cl: 2, reuse: true},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", cl: 2},
		{
			name: "1xx skipped", split: 5, resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
			status: 200, body: "x", cl: 1, reuse: true,
		},
		{
			name: "HEAD has no body", method: "HEAD", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", status: 200, cl: 1234,
			header: http.Header{"Content-Length": {"1234"}}, reuse: true,
		},
		{name: "204 has no body", resp: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reuse: true},
		{name: "304 has no body", resp: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", status: 304, cl: 10, reuse: true},
		{name: "empty content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, reuse: true},
		{name: "equal content-lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", cl: 2, reuse: true},
		{name: "conflicting content-lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", wantErr: "conflicting Content-Length"},
		{name: "bad content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: "invalid Content-Length"},
		{name: "unsupported transfer-encoding", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: "unsupported transfer encoding"},
		{name: "obs-fold", resp: "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", wantErr: "obsolete line folding"},
		{name: "space before colon", resp: "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", wantErr: "invalid header field name"},
		{name: "bad status line", resp: "HTTP/1.1 2000 OK\r\n\r\n", wantErr: "malformed status line"},
		{name: "HTTP/2 status line", resp: "HTTP/2.0 200 OK\r\n\r\n", wantErr: "malformed status line"},
		{name: "101", resp: "HTTP/1.1 101 Switching Protocols\r\n\r\n", wantErr: "101"},
		{name: "too many 1xx", resp: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", wantErr: "too many 1xx"},
		{name: "head cut short", resp: "HTTP/1.1 200 OK\r\nContent-", wantErr: "unexpected EOF"},
		{name: "body cut short", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", status: 200, cl: 10, wantErr: "unexpected EOF"},
		{name: "chunked cut short", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", status: 200, cl: -1, wantErr: "unexpected EOF"},
		{name: "bad chunk", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", status: 200, cl: -1, wantErr: "invalid byte in chunk length"},
		{name: "bad trailer name", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", wantErr: "bad trailer name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps := []string{tc.resp}
			if tc.reuse {
				resps = append(resps, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
			}
			addr, conns := rawServer(t, scripted(tc.split, resps...))
			c := New(tcpDial)
			defer c.CloseIdleConnections()
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp, err := c.RoundTrip(newRequest(t, method, addr, "/", nil))
			var body []byte
			if err == nil {
				if resp.StatusCode != tc.status || resp.ContentLength != tc.cl {
					t.Errorf("status %d, ContentLength %d; want %d, %d", resp.StatusCode, resp.ContentLength, tc.status, tc.cl)
				}
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			for k, vv := range tc.header {
				if got := resp.Header[k]; fmt.Sprint(got) != fmt.Sprint(vv) {
					t.Errorf("header %s: %q, want %q", k, got, vv)
				}
			}
			if tc.header != nil {
				for _, k := range []string{"Transfer-Encoding", "Trailer"} {
					if _, ok := resp.Header[k]; ok {
						t.Errorf("header %s left in the response header", k)
					}
				}
			}
			if fmt.Sprint(resp.Trailer) != fmt.Sprint(tc.trailer) && len(resp.Trailer)+len(tc.trailer) > 0 {
				t.Errorf("trailer %v, want %v", resp.Trailer, tc.trailer)
			}
			resp, err = c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
			if tc.reuse {
				if err != nil {
					t.Fatalf("second request: %v", err)
				}
				if got := readAll(t, resp); got != "second" {
					t.Errorf("second body %q", got)
				}
				if n := conns.Load(); n != 1 {
					t.Errorf("%d connections, want 1 (reused)", n)
				}
			} else if err == nil {
				resp.Body.Close()
				if n := conns.Load(); n != 2 {
					t.Errorf("%d connections, want 2 (the first one closed)", n)
				}
			}
		})
	}
}

// TestTrailerDeclaredBeforeBody: the names a Trailer header announces are
// in resp.Trailer when RoundTrip returns (a proxy announces them before
// the body), their values at the end of the body.
func TestTrailerDeclaredBeforeBody(t *testing.T) {
	addr, _ := rawServer(t, scripted(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n1\r\nz\r\n0\r\nGrpc-Status: 7\r\n\r\n"))
	c := New(tcpDial)
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := resp.Trailer["Grpc-Status"]; !ok || v != nil {
		t.Errorf("trailer before the body: %v, want Grpc-Status declared without value", resp.Trailer)
	}
	readAll(t, resp)
	if got := resp.Trailer.Get("Grpc-Status"); got != "7" {
		t.Errorf("trailer after the body: %v", resp.Trailer)
	}
}

func TestResponseHeaderLimit(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 0\r\n\r\n"
	addr, _ := rawServer(t, scripted(0, big, big))
	c := New(tcpDial, WithMaxResponseHeaderBytes(4096))
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "response header too large") {
		t.Fatalf("error %v, want the header limit", err)
	}
	c = New(tcpDial, WithMaxResponseHeaderBytes(8192))
	defer c.CloseIdleConnections()
	resp, err = c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err != nil {
		t.Fatalf("a 5 KB header line within an 8 KB limit (over the read buffer): %v", err)
	}
	resp.Body.Close()
	if got := len(resp.Header.Get("X-Big")); got != 5000 {
		t.Errorf("X-Big is %d bytes, want 5000", got)
	}
}

// closingServer answers one request per connection, keep-alive, then
// closes the connection and reports it on closed.
func closingServer(t *testing.T) (string, *atomic.Int64, chan struct{}) {
	closed := make(chan struct{}, 16)
	addr, conns := rawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		defer func() { closed <- struct{}{} }()
		defer c.Close()
		if _, err := readReq(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return addr, conns, closed
}

// TestStaleConnectionRetry: a request on a pooled connection the server
// has closed meanwhile is sent again on a new one when it is idempotent
// and its body can be sent again, and fails otherwise.
func TestStaleConnectionRetry(t *testing.T) {
	withGetBody := func() (io.Reader, func() (io.ReadCloser, error)) {
		return strings.NewReader("data"), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("data")), nil }
	}
	for _, tc := range []struct {
		name    string
		method  string
		key     bool // an Idempotency-Key header
		body    func() (io.Reader, func() (io.ReadCloser, error))
		wantErr bool
	}{
		{name: "GET", method: "GET", body: func() (io.Reader, func() (io.ReadCloser, error)) { return nil, nil }},
		{name: "PUT with Idempotency-Key and GetBody", method: "PUT", key: true, body: withGetBody},
		{name: "OPTIONS with GetBody", method: "OPTIONS", body: withGetBody},
		{name: "POST without a body", method: "POST", body: func() (io.Reader, func() (io.ReadCloser, error)) { return nil, nil }, wantErr: true},
		{name: "POST with GetBody", method: "POST", body: withGetBody, wantErr: true},
		{name: "PUT with Idempotency-Key, body without GetBody", method: "PUT", key: true, body: func() (io.Reader, func() (io.ReadCloser, error)) {
			return onlyReader{strings.NewReader("data")}, nil
		}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns, closed := closingServer(t)
			c := New(tcpDial)
			defer c.CloseIdleConnections()
			resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			<-closed // the pooled connection is closed on the server's side
			body, getBody := tc.body()
			req := newRequest(t, tc.method, addr, "/", body)
			req.ContentLength = 4
			if body == nil {
				req.ContentLength = 0
			}
			req.GetBody = getBody
			if tc.key {
				req.Header.Set("Idempotency-Key", "k1")
			}
			resp, err = c.RoundTrip(req)
			if tc.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("no error, want the stale connection's")
				}
				if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
					t.Errorf("error %v, want EOF or reset", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("retry on a new connection failed: %v", err)
			}
			readAll(t, resp)
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// TestIdleConnectionCheckedBeforeUse: a connection idle for longer than
// checkIdle is peeked at, so one the server closed is not used even for a
// request that could not be retried.
func TestIdleConnectionCheckedBeforeUse(t *testing.T) {
	addr, conns, closed := closingServer(t)
	c := New(tcpDial)
	c.checkIdle = 0
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	<-closed
	req := newRequest(t, "POST", addr, "/", onlyReader{strings.NewReader("data")})
	req.ContentLength = 4
	resp, err = c.RoundTrip(req)
	if err != nil {
		t.Fatalf("request after the idle connection closed: %v", err)
	}
	readAll(t, resp)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestNoRetryOnFreshConnection(t *testing.T) {
	addr, conns := rawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		_, _ = readReq(br) // and close without an answer
	})
	c := New(tcpDial)
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err == nil {
		resp.Body.Close()
	}
	if err == nil || !errors.Is(err, io.EOF) {
		t.Fatalf("error %v, want EOF", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (a new connection is not retried)", n)
	}
}

// stallServer sends a response head and part of its body, then waits
// until the client closes the connection, which it reports on gone.
func stallServer(t *testing.T, resp string) (string, chan struct{}) {
	addr, _, gone := stallServerGot(t, resp)
	return addr, gone
}

// stallServerGot is stallServer that also reports each request it read.
func stallServerGot(t *testing.T, resp string) (string, chan struct{}, chan struct{}) {
	gone := make(chan struct{}, 4)
	got := make(chan struct{}, 4)
	addr, _ := rawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		defer func() { gone <- struct{}{} }()
		if _, err := readReq(br); err != nil {
			return
		}
		got <- struct{}{}
		_, _ = io.WriteString(c, resp)
		_, _ = io.Copy(io.Discard, br)
	})
	return addr, got, gone
}

// watchDelays are the cancellation watch's delays the cancel tests run
// with: from the start, and the default (the context may end before the
// watch is registered).
var watchDelays = []time.Duration{0, DefaultCancelWatchDelay}

func TestCancelMidBody(t *testing.T) {
	for _, d := range watchDelays {
		t.Run(d.String(), func(t *testing.T) { testCancelMidBody(t, d) })
	}
}

func testCancelMidBody(t *testing.T, delay time.Duration) {
	addr, gone := stallServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
	c := New(tcpDial, WithCancelWatchDelay(delay))
	ctx, cancel := context.WithCancel(t.Context())
	req := newRequest(t, "GET", addr, "/", nil).WithContext(ctx)
	resp, err := c.RoundTrip(req) //nolint:bodyclose // closed below, after the cancelled Read
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("read %q, %v", buf, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	<-gone // the connection was closed, not pooled
}

func TestCancelBeforeResponse(t *testing.T) {
	for _, d := range watchDelays {
		t.Run(d.String(), func(t *testing.T) { testCancelBeforeResponse(t, d) })
	}
}

func testCancelBeforeResponse(t *testing.T, delay time.Duration) {
	addr, got, gone := stallServerGot(t, "")
	c := New(tcpDial, WithCancelWatchDelay(delay))
	ctx, cancel := context.WithCancelCause(t.Context())
	why := errors.New("client went away")
	req := newRequest(t, "GET", addr, "/", nil).WithContext(ctx)
	done := make(chan error, 1)
	go func() {
		resp, err := c.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-got
	cancel(why)
	if err := <-done; !errors.Is(err, why) && !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip after cancel: %v, want the context's cause", err)
	}
	<-gone
}

// TestCancelAfterResponseKeepsConnection: a request's context that ends
// once its response was read (a proxy's request context ends when its
// handler returns) leaves the pooled connection alone, whether the watch
// was registered (delay 0) or not.
func TestCancelAfterResponseKeepsConnection(t *testing.T) {
	for _, d := range watchDelays {
		t.Run(d.String(), func(t *testing.T) {
			var dials atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			defer srv.Close()
			c := New(func(ctx context.Context, addr string) (net.Conn, error) {
				dials.Add(1)
				return tcpDial(ctx, addr)
			}, WithCancelWatchDelay(d))
			defer c.CloseIdleConnections()
			for i := range 50 {
				ctx, cancel := context.WithCancel(t.Context())
				req := newRequest(t, "GET", srv.Listener.Addr().String(), "/", nil).WithContext(ctx)
				resp, err := c.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if err != nil || string(b) != "ok" {
					t.Fatalf("request %d: %q, %v", i, b, err)
				}
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("%d dials for 50 sequential requests, want 1", n)
			}
		})
	}
}

// TestHeaderRecycling: with WithHeaderRecycling, concurrent requests each
// see their own response's fields until they close the body, the closed
// response has no Header, and the value slices taken from it stay as they
// were after later responses reused the map.
func TestHeaderRecycling(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", r.URL.Path)
		if r.URL.Query().Has("more") {
			w.Header().Set("X-More", "1")
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	defer srv.Close()
	c := New(tcpDial, WithHeaderRecycling())
	defer c.CloseIdleConnections()
	addr := srv.Listener.Addr().String()
	var kept [][]string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				path := fmt.Sprintf("/g%d/r%d", g, i)
				target := path
				if i%2 == 0 {
					target += "?more"
				}
				resp, err := c.RoundTrip(newRequest(t, "GET", addr, target, nil))
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				got, more := resp.Header.Get("X-Echo"), resp.Header.Get("X-More")
				vv := resp.Header["X-Echo"]
				resp.Body.Close()
				if err != nil || string(b) != path || got != path || (more == "1") != (i%2 == 0) {
					t.Errorf("%s: body %q, X-Echo %q, X-More %q, %v", target, b, got, more, err)
					return
				}
				if resp.Header != nil {
					t.Errorf("%s: the closed response still has its header map", path)
				}
				mu.Lock()
				kept = append(kept, vv)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, vv := range kept {
		if len(vv) != 1 || seen[vv[0]] {
			t.Fatalf("a kept X-Echo value changed: %q (or seen twice)", vv)
		}
		seen[vv[0]] = true
	}
	if len(seen) != 200 {
		t.Errorf("%d distinct X-Echo values kept, want 200", len(seen))
	}
}

func TestCloseWhileReadBlocks(t *testing.T) {
	addr, gone := stallServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
	c := New(tcpDial)
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil)) //nolint:bodyclose // closed below, while a Read blocks
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		done <- err
	}()
	// Close until the Read has started and is unblocked by it.
	for {
		resp.Body.Close()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Read returned no error")
			}
			<-gone
			return
		default:
		}
	}
}

// TestCloseBeforeEnd: a body closed before its end keeps its connection
// only when the rest is already buffered.
func TestCloseBeforeEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		resp  string
		conns int64
	}{
		{"rest buffered", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 1},
		{"rest unread", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), 2},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawServer(t, scripted(0, tc.resp, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			c := New(tcpDial)
			defer c.CloseIdleConnections()
			resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) {
				t.Errorf("read after close: %v", err)
			}
			resp, err = c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := conns.Load(); n != tc.conns {
				t.Errorf("%d connections, want %d", n, tc.conns)
			}
		})
	}
}

func TestCloseIdleConnections(t *testing.T) {
	gone := make(chan struct{}, 1)
	addr, _ := rawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readReq(br); err != nil {
				gone <- struct{}{}
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	c := New(tcpDial)
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	<-gone
}

// TestRequestBodyFailure: a request body that fails is the error, and the
// connection, which the server still waits on, is closed.
func TestRequestBodyFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, cl := range []int64{10, 100000, -1} {
		t.Run(fmt.Sprint(cl), func(t *testing.T) {
			addr, gone := stallServer(t, "")
			c := New(tcpDial)
			req := newRequest(t, "POST", addr, "/", io.MultiReader(strings.NewReader("abc"), errReader{boom}))
			req.ContentLength = cl
			resp, err := c.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, boom) {
				t.Errorf("error %v, want the body's", err)
			}
			<-gone
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestEarlyResponse: a server that answers before reading a long body,
// and closes, is heard (the body is streamed while the response is read).
func TestEarlyResponse(t *testing.T) {
	addr, _ := rawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig")
	})
	c := New(tcpDial)
	req := newRequest(t, "POST", addr, "/", onlyReader{bytes.NewReader(make([]byte, 8<<20))})
	req.ContentLength = 8 << 20
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readAll(t, resp); resp.StatusCode != 413 || got != "big" {
		t.Errorf("got %d %q", resp.StatusCode, got)
	}
}

func TestInvalidRequests(t *testing.T) {
	_, addr := echoServer(t)
	c := New(tcpDial)
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		name  string
		tweak func(*http.Request)
	}{
		{"header value with newline", func(r *http.Request) { r.Header["X-A"] = []string{"a\r\nX-Injected: 1"} }},
		{"bad header name", func(r *http.Request) { r.Header["X A"] = []string{"1"} }},
		{"bad host", func(r *http.Request) { r.Host = "a b" }},
		{"CONNECT", func(r *http.Request) { r.Method = http.MethodConnect }},
	} {
		req := newRequest(t, "GET", addr, "/", nil)
		tc.tweak(req)
		resp, err := c.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestDialErrorReturnedAsIs(t *testing.T) {
	want := errors.New("no route")
	c := New(func(context.Context, string) (net.Conn, error) { return nil, want })
	resp, err := c.RoundTrip(newRequest(t, "GET", "127.0.0.1:1", "/", nil))
	if err == nil {
		resp.Body.Close()
	}
	if err != want { //nolint:errorlint // the very error, not one that wraps it
		t.Errorf("error %v, want the dial's", err)
	}
}

// TestIdleTLSConnectionCheckedBeforeUse is TestIdleConnectionCheckedBeforeUse
// over TLS: the peek looks under the TLS connection, where the server's
// close_notify and FIN are.
func TestIdleTLSConnectionCheckedBeforeUse(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	closed := make(chan struct{}, 4)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	c := New(func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	})
	c.checkIdle = 0
	defer c.CloseIdleConnections()
	addr := srv.Listener.Addr().String()
	resp, err := c.RoundTrip(newRequest(t, "GET", addr, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	srv.CloseClientConnections() // the idle connection, from the server's side
	<-closed
	req := newRequest(t, "POST", addr, "/", onlyReader{strings.NewReader("data")})
	req.ContentLength = 4
	resp, err = c.RoundTrip(req)
	if err != nil {
		t.Fatalf("request after the idle TLS connection closed: %v", err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
	if n := cl.n.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
