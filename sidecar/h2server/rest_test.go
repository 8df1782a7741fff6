package h2server

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

// restResult is one ReadRest's answer.
type restResult struct {
	rest  string
	whole bool
}

// TestReadRestGivesOnlyAWholeBody: ReadRest gives nothing, and leaves the
// body as it was, until the client's END_STREAM came; then it gives every
// byte received (over the DATA frames), and the body is at its end.
func TestReadRestGivesOnlyAWholeBody(t *testing.T) {
	ask := make(chan struct{})
	got := make(chan restResult)
	readErr := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr, ok := r.Body.(interface{ ReadRest() ([]byte, bool) })
		if !ok {
			t.Errorf("request body %T has no ReadRest", r.Body)
			readErr <- nil
			return
		}
		for {
			select {
			case _, more := <-ask:
				if !more {
					_, err := r.Body.Read(make([]byte, 16))
					readErr <- err
					return
				}
				rest, whole := rr.ReadRest()
				got <- restResult{string(rest), whole}
			case <-r.Context().Done(): // the test failed
				return
			}
		}
	})})
	rc := dialRaw(t, addr)
	kv := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/", "content-type", "application/grpc"}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(kv...), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	check := func(step string, want restResult) {
		t.Helper()
		ask <- struct{}{}
		if r := <-got; r != want {
			t.Fatalf("%s: ReadRest gave %q, %v; want %q, %v", step, r.rest, r.whole, want.rest, want.whole)
		}
	}
	check("no DATA yet", restResult{})
	if err := rc.fr.WriteData(1, false, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	rc.pingRoundTrip([8]byte{1}) // the read loop has the DATA
	check("DATA without END_STREAM", restResult{})
	if err := rc.fr.WriteData(1, true, []byte(" world")); err != nil {
		t.Fatal(err)
	}
	rc.pingRoundTrip([8]byte{2})
	check("after END_STREAM", restResult{"hello world", true})
	check("taken", restResult{"", true})
	close(ask)
	if err := <-readErr; !errors.Is(err, io.EOF) {
		t.Fatalf("Read after ReadRest: %v, want io.EOF", err)
	}
}
