package h2client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/sidecar/h2server"
)

// waitFor bounds what a test waits for; it is not an assertion on time.
const waitFor = 20 * time.Second

// serverKind starts an h2c server with a handler on loopback and returns
// its address; maxStreams 0 is the server's default.
type serverKind struct {
	name  string
	start func(t *testing.T, h http.Handler, maxStreams uint32) (addr string, conns *atomic.Int32)
}

var servers = []serverKind{
	{"h2server", startH2Server},
	{"x/net", startXNetServer},
}

// listen accepts connections and serves each with serve until the test
// ends; conns counts them.
func listen(t *testing.T, serve func(net.Conn), stop func()) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := new(atomic.Int32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		if stop != nil {
			stop()
		}
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), conns
}

func startH2Server(t *testing.T, h http.Handler, maxStreams uint32) (string, *atomic.Int32) {
	s := &h2server.Server{Handler: h, MaxConcurrentStreams: maxStreams}
	return listen(t, func(c net.Conn) { s.ServeConn(context.Background(), c, nil) }, func() { _ = s.Close() })
}

// startXNetServer serves h2c with net/http's server (x/net's HTTP/2
// server, bundled).
func startXNetServer(t *testing.T, h http.Handler, maxStreams uint32) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := new(atomic.Int32)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	s := &http.Server{
		Handler:   h,
		Protocols: p,
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: int(maxStreams)},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
		ReadHeaderTimeout: waitFor,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ln.Addr().String(), conns
}

// rtErr is RoundTrip's error; the response's body, if any, is closed.
func rtErr(c *Client, req *http.Request) error {
	resp, err := c.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	return err
}

func tcpDial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// newClient is a Client that dials TCP; it is closed when the test ends.
func newClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	c := New(tcpDial, opts...)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newRequest(t *testing.T, ctx context.Context, method, addr, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// echo answers with the request's body and headers: X-Method, X-Len
// (bytes read), the request's trailers as response trailers, and the
// status in X-Status.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Echo", r.Header.Get("X-Echo"))
	w.Header().Set("Trailer", "X-Len, X-Req-Trailer")
	code := http.StatusOK
	if s := r.Header.Get("X-Status"); s != "" {
		_, _ = fmt.Sscan(s, &code)
	}
	w.WriteHeader(code)
	n, _ := io.Copy(w, r.Body)
	w.Header().Set("X-Len", fmt.Sprint(n))
	w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Up"))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestRoundTrip(t *testing.T) {
	big := randBytes(5 << 20)
	cases := []struct {
		name       string
		method     string
		body       []byte
		stream     bool // the body is a stream of unknown length
		trailer    string
		status     int
		wantBody   bool
		wantLength int64 // the response's ContentLength, when >= -1
	}{
		{name: "get", method: http.MethodGet, status: 200, wantBody: true},
		{name: "post small", method: http.MethodPost, body: []byte("hello"), status: 200, wantBody: true},
		{name: "post large known length", method: http.MethodPost, body: big, status: 200, wantBody: true},
		{name: "post large stream", method: http.MethodPost, body: big, stream: true, status: 200, wantBody: true},
		{name: "request trailers", method: http.MethodPost, body: []byte("abc"), stream: true, trailer: "up-value", status: 200, wantBody: true},
		{name: "head", method: http.MethodHead, status: 200},
		{name: "no content", method: http.MethodGet, status: 204},
		{name: "not found", method: http.MethodPost, body: []byte("x"), status: 404, wantBody: true},
	}
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, conns := sk.start(t, http.HandlerFunc(echo), 0)
			c := newClient(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					var body io.Reader
					if tc.body != nil {
						body = bytes.NewReader(tc.body)
						if tc.stream {
							body = io.MultiReader(body) // hides the length
						}
					}
					req := newRequest(t, context.Background(), tc.method, addr, "/p?q=1", body)
					req.Header.Set("X-Echo", "e1")
					req.Header.Set("X-Status", fmt.Sprint(tc.status))
					if tc.trailer != "" {
						req.Trailer = http.Header{"X-Up": nil}
						body = req.Body
						req.Body = io.NopCloser(readerFunc(func(p []byte) (int, error) {
							n, err := body.Read(p)
							if errors.Is(err, io.EOF) {
								req.Trailer.Set("X-Up", tc.trailer)
							}
							return n, err
						}))
					}
					resp, err := c.RoundTrip(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode != tc.status || resp.Header.Get("X-Method") != tc.method || resp.Header.Get("X-Echo") != "e1" {
						t.Fatalf("status %d, header %v", resp.StatusCode, resp.Header)
					}
					got, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if !tc.wantBody {
						if len(got) != 0 {
							t.Fatalf("body of %d bytes, want none", len(got))
						}
						return
					}
					if !bytes.Equal(got, tc.body) {
						t.Fatalf("body of %d bytes, want %d (equal: %v)", len(got), len(tc.body), bytes.Equal(got, tc.body))
					}
					if g, w := resp.Trailer.Get("X-Len"), fmt.Sprint(len(tc.body)); g != w {
						t.Fatalf("trailer X-Len %q, want %q (%v)", g, w, resp.Trailer)
					}
					if g := resp.Trailer.Get("X-Req-Trailer"); g != tc.trailer {
						t.Fatalf("request trailer arrived as %q, want %q", g, tc.trailer)
					}
				})
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections, want 1", n)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestFullDuplex: the response streams while the request body is still
// being sent (a bidirectional gRPC stream, a CONNECT tunnel).
func TestFullDuplex(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(bytes.ToUpper(buf[:n]))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, _ := sk.start(t, h, 0)
			c := newClient(t)
			for _, method := range []string{http.MethodPost, http.MethodConnect} {
				t.Run(method, func(t *testing.T) {
					pr, pw := io.Pipe()
					req := newRequest(t, context.Background(), method, addr, "/", pr)
					if method == http.MethodConnect {
						req.Host = "upstream.example:443"
					}
					resp, err := c.RoundTrip(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					buf := make([]byte, 64)
					for _, msg := range []string{"one", "two", "three"} {
						if _, err := pw.Write([]byte(msg)); err != nil {
							t.Fatal(err)
						}
						n, err := io.ReadAtLeast(resp.Body, buf, len(msg))
						if err != nil || string(buf[:n]) != strings.ToUpper(msg) {
							t.Fatalf("read %q, %v; want %q", buf[:n], err, strings.ToUpper(msg))
						}
					}
					_ = pw.Close()
					if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
						t.Fatalf("after the request ended: %q, %v", rest, err)
					}
				})
			}
		})
	}
}

// TestCancel: the request's context ends while the caller waits for the
// head, and while it reads the body: the stream is reset (the handler's
// context ends) and the caller gets the context's error.
func TestCancel(t *testing.T) {
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			gone := make(chan struct{}, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/body" {
					_, _ = w.Write([]byte("first"))
					w.(http.Flusher).Flush()
				}
				started <- struct{}{}
				<-r.Context().Done()
				gone <- struct{}{}
			})
			addr, _ := sk.start(t, h, 0)
			c := newClient(t)
			t.Run("head", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() {
					err := rtErr(c, newRequest(t, ctx, http.MethodGet, addr, "/head", nil))
					errc <- err
				}()
				<-started
				cancel()
				if err := <-errc; !errors.Is(err, context.Canceled) {
					t.Fatalf("RoundTrip: %v, want context.Canceled", err)
				}
				<-gone
			})
			t.Run("body", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				resp, err := c.RoundTrip(newRequest(t, ctx, http.MethodGet, addr, "/body", nil))
				if err != nil {
					t.Fatal(err)
				}
				<-started
				buf := make([]byte, 5)
				if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
					t.Fatalf("read %q, %v", buf, err)
				}
				cancel()
				if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
					t.Fatalf("Read after cancel: %v, want context.Canceled", err)
				}
				<-gone
				_ = resp.Body.Close()
			})
			t.Run("close body", func(t *testing.T) {
				resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/body", nil))
				if err != nil {
					t.Fatal(err)
				}
				<-started
				_ = resp.Body.Close()
				<-gone
			})
			// The connection is still good.
			resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/body", nil))
			if err == nil {
				<-started
				_ = resp.Body.Close()
				<-gone
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPeerReset: a handler that aborts resets its stream; the caller
// gets an error, and the connection carries the next request.
func TestPeerReset(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		if r.URL.Path == "/abort-body" {
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	})
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, conns := sk.start(t, h, 0)
			c := newClient(t)
			if err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, addr, "/abort", nil)); err == nil || errors.Is(err, ErrNotProcessed) {
				t.Fatalf("RoundTrip of a reset stream: %v", err)
			}
			resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/abort-body", nil))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Fatal("the body of a reset stream ended without an error")
			}
			_ = resp.Body.Close()
			resp, err = c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(b) != "ok" || conns.Load() != 1 {
				t.Fatalf("body %q over %d connections", b, conns.Load())
			}
		})
	}
}

// TestMaxConcurrentStreams: with every stream a connection allows in
// use, the next request opens a second connection; no connection
// carries more streams than the server allows.
func TestMaxConcurrentStreams(t *testing.T) {
	const limit, requests = 2, 5
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			var mu sync.Mutex
			perConn := map[string]int{}
			most := 0
			arrived := make(chan struct{}, requests)
			release := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/warm" {
					return
				}
				mu.Lock()
				perConn[r.RemoteAddr]++
				most = max(most, perConn[r.RemoteAddr])
				mu.Unlock()
				arrived <- struct{}{}
				<-release
				mu.Lock()
				perConn[r.RemoteAddr]--
				mu.Unlock()
			})
			addr, conns := sk.start(t, h, limit)
			c := newClient(t)
			// The first connection learns the limit from the server's
			// SETTINGS.
			resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/warm", nil))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			var wg sync.WaitGroup
			errs := make(chan error, requests)
			for range requests {
				wg.Go(func() {
					resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/", nil))
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						_ = resp.Body.Close()
					}
					errs <- err
				})
			}
			for range requests {
				<-arrived
			}
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if want := int32((requests + limit - 1) / limit); conns.Load() != want || most > limit {
				t.Fatalf("%d connections, at most %d streams on one; want %d, %d", conns.Load(), most, want, limit)
			}
		})
	}
}

// TestGracefulGoAway: h2server's Shutdown sends GOAWAY while a request
// is in flight: it completes, and the next request goes on a new
// connection.
func TestGracefulGoAway(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	s := &h2server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})}
	addr, conns := listen(t, func(c net.Conn) { s.ServeConn(context.Background(), c, nil) }, func() { _ = s.Close() })
	c := newClient(t)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/slow", nil))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		done <- result{string(b), err}
	}()
	<-arrived
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Requests made after the GOAWAY came cannot go on the first
	// connection; until then they may (and then complete on it).
	deadline := time.Now().Add(waitFor)
	for conns.Load() < 2 && time.Now().Before(deadline) {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, "/", nil))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		} else if !errors.Is(err, ErrNotProcessed) {
			// The server refuses new connections once shutting down.
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if r := <-done; r.err != nil || r.body != "ok" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

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

// TestCloseEndsGoroutines: Close ends every connection's read loop and
// every body writer, including one blocked in its body's Read.
func TestCloseEndsGoroutines(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		_, _ = io.Copy(io.Discard, r.Body)
	})
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, _ := sk.start(t, h, 0)
			base := runtime.NumGoroutine()
			c := New(tcpDial)
			pr, pw := io.Pipe()
			defer pw.Close()
			resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodPost, addr, "/", pr)) //nolint:bodyclose // closed below, after Close
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if runtime.NumGoroutine() <= base {
				t.Fatal("no read loop or body writer running")
			}
			_ = c.Close()
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Fatal("the body of a closed client's stream ended without an error")
			}
			if err := rtErr(c, newRequest(t, context.Background(), http.MethodGet, addr, "/", nil)); !errors.Is(err, ErrClosed) {
				t.Fatalf("RoundTrip after Close: %v", err)
			}
			// The server's goroutines for the connection end too.
			settleGoroutines(t, base)
		})
	}
}

// TestIdleConnections: CloseIdleConnections and the idle timeout close a
// connection without streams, never one with a stream in flight.
func TestIdleConnections(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
	})
	addr, conns := startH2Server(t, h, 0)
	c := newClient(t)
	get := func(path string) error {
		resp, err := c.RoundTrip(newRequest(t, context.Background(), http.MethodGet, addr, path, nil))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- get("/slow") }()
	<-arrived
	c.CloseIdleConnections()
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("request in flight during CloseIdleConnections: %v", err)
	}
	c.CloseIdleConnections()
	if err := get("/"); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the idle one was closed)", n)
	}
}

// wholeBody gives its bytes only through ReadRest (as h2server's request
// body once the client ended it); a Read is a failure.
type wholeBody struct {
	data  []byte
	reads atomic.Int32
}

func (b *wholeBody) ReadRest() ([]byte, bool) { return b.data, true }
func (b *wholeBody) Read([]byte) (int, error) {
	b.reads.Add(1)
	return 0, errors.New("read called")
}
func (b *wholeBody) Close() error { return nil }

// TestWholeBody: a body that gives all of itself at once is framed with
// the head on the caller's goroutine, never read by a body writer; with
// trailers, they follow it.
func TestWholeBody(t *testing.T) {
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, _ := sk.start(t, http.HandlerFunc(echo), 0)
			c := newClient(t)
			for _, trailer := range []string{"", "tv"} {
				body := &wholeBody{data: []byte("whole body")}
				req := newRequest(t, context.Background(), http.MethodPost, addr, "/", nil)
				req.Body = body
				if trailer != "" {
					req.Trailer = http.Header{"X-Up": {trailer}}
				}
				resp, err := c.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || string(got) != "whole body" || body.reads.Load() != 0 {
					t.Fatalf("echo %q, %v; %d reads of the body", got, err, body.reads.Load())
				}
				if g := resp.Trailer.Get("X-Req-Trailer"); g != trailer {
					t.Fatalf("request trailer arrived as %q, want %q", g, trailer)
				}
			}
		})
	}
}

// TestResponseTrailers: the trailers fill the Trailer map the head
// declared, at the body's io.EOF: a name sent twice keeps both values, a
// declared name not sent stays nil, an undeclared one is added; and a
// response that declared none gets a map of what came.
func TestResponseTrailers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/declared" {
			w.Header().Set("Trailer", "X-Twice, X-Unsent, X-Once")
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "body")
		w.Header().Add(http.TrailerPrefix+"X-Twice", "1")
		w.Header().Add(http.TrailerPrefix+"X-Twice", "2")
		w.Header().Set(http.TrailerPrefix+"X-Once", "3")
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "4")
	})
	for _, sk := range servers {
		t.Run(sk.name, func(t *testing.T) {
			addr, _ := sk.start(t, h, 0)
			c := newClient(t)
			for _, path := range []string{"/declared", "/undeclared"} {
				resp, err := c.RoundTrip(newRequest(t, t.Context(), http.MethodGet, addr, path, nil))
				if err != nil {
					t.Fatal(err)
				}
				declared := resp.Trailer
				if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "body" {
					t.Fatalf("%s: body %q, %v", path, b, err)
				}
				_ = resp.Body.Close()
				want := http.Header{"X-Twice": {"1", "2"}, "X-Once": {"3"}, "X-Undeclared": {"4"}}
				if path == "/declared" {
					want["X-Unsent"] = nil
					if reflect.ValueOf(declared).UnsafePointer() != reflect.ValueOf(resp.Trailer).UnsafePointer() {
						t.Errorf("%s: the declared Trailer map was replaced at EOF", path)
					}
				}
				if !reflect.DeepEqual(resp.Trailer, want) {
					t.Errorf("%s: trailers %v, want %v", path, resp.Trailer, want)
				}
			}
		})
	}
}
