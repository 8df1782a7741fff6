package retry

import (
	"io"
	"strings"
	"testing"
)

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestTee(t *testing.T) {
	t.Run("untouched: Close leaves the body for the next try", func(t *testing.T) {
		src := &closeCounter{Reader: strings.NewReader("hello")}
		tee := NewTee(src, 10)
		_ = tee.Close()
		if src.closed != 0 || !tee.Untouched() {
			t.Fatalf("closed %d, untouched %v", src.closed, tee.Untouched())
		}
		if _, ok := tee.Whole(); ok {
			t.Error("Whole before any read")
		}
		b, _ := io.ReadAll(tee)
		if string(b) != "hello" {
			t.Errorf("read %q", b)
		}
	})
	t.Run("read to the end within the limit: Whole is the body", func(t *testing.T) {
		src := &closeCounter{Reader: strings.NewReader("hello")}
		tee := NewTee(src, 10)
		if b, _ := io.ReadAll(tee); string(b) != "hello" {
			t.Fatalf("read %q", b)
		}
		_ = tee.Close()
		if src.closed != 1 || tee.Untouched() {
			t.Errorf("closed %d, untouched %v", src.closed, tee.Untouched())
		}
		w, ok := tee.Whole()
		if !ok {
			t.Fatal("no whole body")
		}
		if b, _ := io.ReadAll(w.Reader()); string(b) != "hello" || w.Len() != 5 {
			t.Errorf("copy %q (%d)", b, w.Len())
		}
	})
	t.Run("read in part: no copy", func(t *testing.T) {
		tee := NewTee(io.NopCloser(strings.NewReader("hello")), 10)
		if _, err := tee.Read(make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		if _, ok := tee.Whole(); ok || tee.Untouched() {
			t.Errorf("whole %v, untouched %v after a partial read", ok, tee.Untouched())
		}
	})
	t.Run("over the limit: streamed whole, no copy", func(t *testing.T) {
		tee := NewTee(io.NopCloser(strings.NewReader("hello world")), 5)
		if b, _ := io.ReadAll(tee); string(b) != "hello world" {
			t.Fatalf("read %q", b)
		}
		if _, ok := tee.Whole(); ok {
			t.Error("a copy of a body over the limit")
		}
	})
}
