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
	resp, err := c.RoundTrip(req)
	if err != nil {
		return err
	}
	for {
		_, err := resp.Body.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return resp.Body.Close()
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
		bound float64
	}{
		{"background", DefaultCancelWatchDelay, context.Background(), false, nil, 5},
		// The header map (2: the map and its group) comes back at Close.
		{"background-recycled-headers", DefaultCancelWatchDelay, context.Background(), false, []Option{WithHeaderRecycling()}, 3},
		// The same context every run: its done channel and children map
		// are made once.
		{"cancelable", 0, cancelable, false, nil, 7},
		// The context, its cancel func and the request copy are 3 of
		// these. (An hour: the exchange always ends before the watch,
		// whatever the machine's load; the default is milliseconds.)
		{"fresh-context", time.Hour, context.Background(), true, nil, 8},
		{"fresh-context-watched-at-once", 0, context.Background(), true, nil, 13},
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
				if err := exchangeOnce(c, r, buf); err != nil {
					failed = err
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
