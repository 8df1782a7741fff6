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

func TestTeeAfterFailedTry(t *testing.T) {
	for _, tc := range []struct {
		name           string
		read           int // bytes the failed try read (-1: to the end)
		limit          int64
		connectFailure bool
		wantBody       string // "" with replayable: the tee itself goes again
		wantReplay     bool
	}{
		{"connect failure, nothing read", 0, 10, true, "", true},
		{"other failure, nothing read", 0, 10, false, "", false},
		{"read to the end within the limit", -1, 10, false, "hello", true},
		{"read to the end over the limit", -1, 3, true, "", false},
		{"partly read", 2, 10, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tee := NewTee(&closeCounter{Reader: strings.NewReader("hello")}, tc.limit)
			switch {
			case tc.read < 0:
				_, _ = io.ReadAll(tee)
			case tc.read > 0:
				_, _ = io.ReadFull(tee, make([]byte, tc.read))
			}
			b, replay := tee.AfterFailedTry(tc.connectFailure)
			if replay != tc.wantReplay {
				t.Fatalf("replayable %v, want %v", replay, tc.wantReplay)
			}
			got := ""
			if b != nil {
				data, _ := io.ReadAll(b.Reader())
				got = string(data)
			}
			if got != tc.wantBody {
				t.Errorf("copy %q, want %q", got, tc.wantBody)
			}
		})
	}
}
