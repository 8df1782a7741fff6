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
// request context and its cancel func, the response header map.
func TestAllocsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	payload := make([]byte, 1024)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = []string{"1024"}
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(payload)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(&http.Server{Handler: h})
	go func() { _ = s.Serve(ln) }()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
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
	exchange() // the connection's first request sets it up
	n := testing.AllocsPerRun(200, exchange)
	if failed != nil {
		t.Fatal(failed)
	}
	t.Logf("%.1f allocs per request", n)
	const bound = 9
	if n > bound {
		t.Errorf("%.1f allocs per request, want at most %d", n, bound)
	}
}
