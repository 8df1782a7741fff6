package h1client

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// cannedResp is what cannedServer answers to every request.
const cannedResp = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nDate: Mon, 23 Nov 2026 17:00:00 GMT\r\nContent-Length: 2\r\n\r\nok"

// cannedServer answers every request head (requests without a body) on
// each keep-alive connection with cannedResp, allocating nothing per
// request, so that allocation counts around RoundTrip are the client's.
func cannedServer(tb testing.TB) string {
	tb.Helper()
	resp := []byte(cannedResp)
	addr, _ := rawServer(tb, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	})
	return addr
}

// exchangeOnce sends req with c and reads the whole body into buf.
func exchangeOnce(c *Client, req *http.Request, buf []byte) error {
	_, err := exchange(c, req, buf) //nolint:bodyclose // exchange closes it
	return err
}

// exchange is exchangeOnce returning the closed response.
func exchange(c *Client, req *http.Request, buf []byte) (*http.Response, error) {
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	for {
		_, err := resp.Body.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return resp, resp.Body.Close()
}

// TestAllocsPerRequest bounds the allocations of one keep-alive exchange
// (a GET, a response with a Content-Length body read to its end): the
// response head's string, the Response with its body, its header map and
// the values' slice. A request whose context can be cancelled adds its
// watch only when it is still in flight after the watch delay; watched
// from the start (delay 0), a new context per request (the proxy's case)
// costs five more: its done channel and children map, the AfterFunc's
// context, its stop function and the closure it registers.
func TestAllocsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	addr := cannedServer(t)
	cancelable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name  string
		delay time.Duration
		ctx   context.Context
		fresh bool // a new cancelable context and request per exchange
		opts  []Option
		// recycle: each response is given back (Recycle) once closed.
		recycle bool
		bound   float64
	}{
		{"background", DefaultCancelWatchDelay, context.Background(), false, nil, false, 5},
		// The header map (2: the map and its group) comes back at Close.
		{"background-recycled-headers", DefaultCancelWatchDelay, context.Background(), false, []Option{WithHeaderRecycling()}, false, 3},
		// And the Response with its body when given back: the head's
		// string and the values' slice are left.
		{"background-recycled-responses", DefaultCancelWatchDelay, context.Background(), false, []Option{WithHeaderRecycling()}, true, 2},
		// The same context every run: its done channel and children map
		// are made once.
		{"cancelable", 0, cancelable, false, nil, false, 7},
		// The context, its cancel func and the request copy are 3 of
		// these. (An hour: the exchange always ends before the watch,
		// whatever the machine's load; the default is milliseconds.)
		{"fresh-context", time.Hour, context.Background(), true, nil, false, 8},
		{"fresh-context-watched-at-once", 0, context.Background(), true, nil, false, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tcpDial, append(tc.opts, WithCancelWatchDelay(tc.delay))...)
			defer c.CloseIdleConnections()
			req, err := http.NewRequestWithContext(tc.ctx, http.MethodGet, "http://"+addr+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			if err := exchangeOnce(c, req, buf); err != nil { // dials
				t.Fatal(err)
			}
			var failed error
			n := testing.AllocsPerRun(200, func() {
				r := req
				if tc.fresh {
					ctx, cancel := context.WithCancel(tc.ctx)
					defer cancel()
					r = req.WithContext(ctx)
				}
				resp, err := exchange(c, r, buf) //nolint:bodyclose // exchange closes it
				if err != nil {
					failed = err
					return
				}
				if tc.recycle {
					Recycle(resp)
				}
			})
			if failed != nil {
				t.Fatal(failed)
			}
			t.Logf("%.1f allocs per request", n)
			if n > tc.bound {
				t.Errorf("%.1f allocs per request, want at most %v", n, tc.bound)
			}
		})
	}
}

// BenchmarkRoundTrip is one keep-alive GET and its 2-byte response per op
// against a server that allocates nothing: allocs/op are the client's.
//
//	go test -run '^$' -bench BenchmarkRoundTrip -benchmem ./h1client/
func BenchmarkRoundTrip(b *testing.B) {
	addr := cannedServer(b)
	c := New(tcpDial)
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, func())
	}{
		{"background", func() (context.Context, func()) { return context.Background(), func() {} }},
		{"cancelable", func() (context.Context, func()) { return context.WithCancel(context.Background()) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				// A new request and context per op, as the proxy makes them.
				ctx, cancel := tc.ctx()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/x", nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := exchangeOnce(c, req, buf); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
		})
	}
}

// TestRecycle: a response given back once its body was read and closed
// is the memory of a later response, with that response's fields only;
// one whose body is not closed, or from a Client that does not recycle,
// is not reused.
func TestRecycle(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	addr := cannedServer(t)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	c := New(tcpDial, WithHeaderRecycling())
	defer c.CloseIdleConnections()
	first, err := exchange(c, req, buf) //nolint:bodyclose // exchange closes it
	if err != nil {
		t.Fatal(err)
	}
	Recycle(first)
	if first.StatusCode != 0 || first.Request != nil || first.Body != nil {
		t.Errorf("a recycled response keeps its fields: %d %v %v", first.StatusCode, first.Request, first.Body)
	}
	second, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("the next response is not the one given back")
	}
	if second.StatusCode != http.StatusOK || second.ContentLength != 2 || second.Request != req || second.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("recycled response: %d %d %v", second.StatusCode, second.ContentLength, second.Header)
	}
	// Not closed: left alone.
	Recycle(second)
	if second.StatusCode != http.StatusOK {
		t.Fatalf("a response whose body is open was recycled")
	}
	b, err := io.ReadAll(second.Body)
	if err != nil || string(b) != "ok" {
		t.Fatalf("body %q, %v", b, err)
	}
	_ = second.Body.Close()
	Recycle(second)
	third, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if third != second {
		t.Errorf("the next response is not the one given back")
	}
	_ = third.Body.Close()

	// A Client that does not recycle leaves its responses to the GC.
	plain := New(tcpDial)
	defer plain.CloseIdleConnections()
	p1, err := exchange(plain, req, buf) //nolint:bodyclose // exchange closes it
	if err != nil {
		t.Fatal(err)
	}
	Recycle(p1)
	if p1.StatusCode != http.StatusOK {
		t.Errorf("a response of a Client that does not recycle was recycled")
	}
}
