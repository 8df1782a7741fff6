package h1server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkServer sends keep-alive GETs (1 KiB answer with
// Content-Length, as the sidecar's proxy writes them) over one loopback
// connection to this server and to net/http's with the same handler; the
// client side is the same in both, so the difference in allocs/op and
// ns/op is the servers'.
//
//	go test -run '^$' -bench BenchmarkServer -benchmem ./h1server/
func BenchmarkServer(b *testing.B) {
	payload := make([]byte, 1024)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"1024"}
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(payload)
	})
	req := []byte("GET /1k HTTP/1.1\r\nHost: upstream.bench.svc.cluster.local:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	for _, tc := range []struct {
		name  string
		serve func(net.Listener) (stop func())
	}{
		{"h1server", func(ln net.Listener) func() {
			s := New(&http.Server{Handler: h})
			go func() { _ = s.Serve(ln) }()
			return func() { _ = s.Close() }
		}},
		{"net-http", func(ln net.Listener) func() {
			s := &http.Server{Handler: h}
			go func() { _ = s.Serve(ln) }()
			return func() { _ = s.Close() }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			stop := tc.serve(ln)
			defer stop()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 8192)
			buf := make([]byte, 1024)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAnswer reads one response with a Content-Length, allocation-free.
func readAnswer(br *bufio.Reader, buf []byte) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "Content-Length: "
		if len(line) > len(cl) && string(line[:len(cl)]) == cl {
			n, err = strconv.Atoi(string(line[len(cl) : len(line)-2]))
			if err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return errors.New("no Content-Length")
	}
	_, err := io.ReadFull(br, buf[:n])
	return err
}
