package retry

import (
	"context"
	"io"
	"strconv"
	"testing"
)

// chunkBody is a request body as an HTTP/2 server gives a short one: the
// data in as few reads as the reader's buffer allows, then io.EOF.
type chunkBody struct {
	data []byte
	off  int
}

func (c *chunkBody) Read(p []byte) (int, error) {
	if c.off == len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}

func (c *chunkBody) Close() error { return nil }

// wholeBody is a chunkBody received whole: h2server's once the client's
// END_STREAM came, as a gRPC unary call's usually has.
type wholeBody struct{ chunkBody }

func (w *wholeBody) ReadRest() ([]byte, bool) {
	rest := append([]byte(nil), w.data[w.off:]...)
	w.off = len(w.data)
	return rest, true
}

// BenchmarkTee is what a body of unknown length costs the outbound under a
// retry policy, per request: the Tee, one try reading it to its end as a
// transport does (16 KiB reads, HTTP/2's frame size), and Close; "whole":
// a body received whole (restReader), which starts no pump.
//
//	cd sidecar && go test -run '^$' -bench BenchmarkTee -benchmem ./filter/retry/
func BenchmarkTee(b *testing.B) {
	for _, size := range []int{5, 1024, 16 << 10} {
		for _, whole := range []bool{false, true} {
			name := strconv.Itoa(size) + "B"
			if whole {
				name += "/whole"
			}
			b.Run(name, func(b *testing.B) {
				benchTee(b, size, whole)
			})
		}
	}
}

func benchTee(b *testing.B, size int, whole bool) {
	b.Helper()
	chunks := &chunkBody{data: make([]byte, size)}
	var src io.ReadCloser = chunks
	if whole {
		w := &wholeBody{chunkBody{data: chunks.data}}
		chunks, src = &w.chunkBody, w
	}
	p := make([]byte, 16<<10)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		chunks.off = 0
		t := NewTee(src, 64<<10)
		r := t.Try(ctx)
		for {
			if _, err := r.Read(p); err != nil {
				break
			}
		}
		_ = r.Close()
		_ = t.Close()
	}
}
