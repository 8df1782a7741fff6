package h1server

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// TestAllocsPerRequest bounds the server's allocations for one keep-alive
// GET answered with a Content-Length body (the client side, readAnswer,
// allocates nothing): the head's string, the header map and its values'
// slice, the exchange (with the request's URL), the *http.Request, the
// request context and its cancel func, the response header map. A
// Recycler that gives each request back saves the exchange, the header
// map and its values' slice.
func TestAllocsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	payload := make([]byte, 1024)
	answer := func(w http.ResponseWriter) {
		w.Header()["Content-Length"] = []string{"1024"}
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(payload)
	}
	for _, tc := range []struct {
		name  string
		h     http.Handler
		bound float64
	}{
		{"handler", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w) }), 9},
		{"recycler", recycleFunc(func(w http.ResponseWriter, _ *http.Request) bool { answer(w); return true }), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := allocsPerRequest(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.1f allocs per request", n)
			if n > tc.bound {
				t.Errorf("%.1f allocs per request, want at most %v", n, tc.bound)
			}
		})
	}
}

// recycleFunc is a Recycler.
type recycleFunc func(http.ResponseWriter, *http.Request) bool

func (f recycleFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) { f(w, r) }

func (f recycleFunc) ServeRecycle(w http.ResponseWriter, r *http.Request) bool { return f(w, r) }

// allocsPerRequest serves h and returns its allocations per keep-alive
// request (the connection's first request sets it up and is not counted).
func allocsPerRequest(h http.Handler) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	s := New(&http.Server{Handler: h})
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := []byte("GET /1k HTTP/1.1\r\nHost: upstream.bench.svc.cluster.local:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 8192)
	buf := make([]byte, 1024)
	var failed error
	exchange := func() {
		if _, err := c.Write(req); err != nil {
			failed = err
			return
		}
		if err := readAnswer(br, buf); err != nil {
			failed = err
		}
	}
	exchange()
	n := testing.AllocsPerRun(200, exchange)
	return n, failed
}
