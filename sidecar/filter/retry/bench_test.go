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

// BenchmarkTee is what a body of unknown length costs the outbound under a
// retry policy, per request: the Tee, one try reading it to its end as a
// transport does (16 KiB reads, HTTP/2's frame size), and Close.
//
//	cd sidecar && go test -run '^$' -bench BenchmarkTee -benchmem ./filter/retry/
func BenchmarkTee(b *testing.B) {
	for _, size := range []int{5, 1024, 16 << 10} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			src := &chunkBody{data: make([]byte, size)}
			p := make([]byte, 16<<10)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				src.off = 0
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
		})
	}
}
