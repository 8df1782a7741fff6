package telemetry

import (
	"io"
	"strings"
	"testing"
)

// wholeBody is a server's request body received whole (h2server's once
// the client's END_STREAM came).
type wholeBody struct{ io.ReadCloser }

func (wholeBody) ReadRest() ([]byte, bool) { return []byte("hello"), true }

// TestCountingBodyPassesReadRestOn: the request-bytes counter wraps the
// server's body; a body received whole is still given whole through it
// (retry.Tee then starts no pump), and its bytes are counted.
func TestCountingBodyPassesReadRestOn(t *testing.T) {
	b := countingBody{rc: wholeBody{io.NopCloser(strings.NewReader(""))}}
	var body io.ReadCloser = &b
	rr, ok := body.(restReader)
	if !ok {
		t.Fatal("countingBody has no ReadRest")
	}
	if rest, whole := rr.ReadRest(); string(rest) != "hello" || !whole {
		t.Fatalf("ReadRest: %q, %v; want hello, true", rest, whole)
	}
	if b.n != 5 {
		t.Errorf("counted %d bytes, want 5", b.n)
	}
	plain := countingBody{rc: io.NopCloser(strings.NewReader("hello"))}
	if rest, whole := plain.ReadRest(); rest != nil || whole {
		t.Errorf("ReadRest of a body without it: %q, %v; want nil, false", rest, whole)
	}
}
