package h2server

import (
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

// TestRequestTrailersFilledByTheReader: a request's trailers go into its
// Trailer map on the goroutine that reads the body to its io.EOF, not on
// the read loop's as they arrive: a handler that looks at the declared
// trailer names before it reads the body (the proxy's upstream request
// shares the map, and h2client ranges over it to encode the trailer
// field) must not race with the peer's trailers (a map ranged over while
// it is written is a fatal error, not a panic: a client could end the
// sidecar). Under -race the read loop's write was reported.
func TestRequestTrailersFilledByTheReader(t *testing.T) {
	got := make(chan string, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Before the body: the names declared, no values yet. Nothing
		// here orders this with the read loop but the body's reads
		// below.
		names := 0
		for k, vv := range r.Trailer {
			if k == "X-T" && vv == nil {
				names++
			}
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || string(body) != "b" || names != 1 {
			got <- "body " + string(body) + " err " + errString(err)
			return
		}
		got <- r.Trailer.Get("X-T")
	})}
	rc := dialRaw(t, serve(t, s))
	head := rc.block(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/", "trailer", "x-t")
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteData(1, false, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block("x-t", "v"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "v" {
		t.Fatalf("request trailer X-T after the body's end: %q", v)
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestFrameTooLargeGoAway: a frame longer than the frame size the server
// reads (it advertises no other than 16 KiB) ends the connection with
// GOAWAY FRAME_SIZE_ERROR (RFC 9113 4.2), not PROTOCOL_ERROR.
func TestFrameTooLargeGoAway(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	rc := dialRaw(t, serve(t, s))
	// An unknown frame type: only its length is at fault.
	if err := rc.fr.WriteRawFrame(0xfa, 0, 0, make([]byte, 16<<10+1)); err != nil {
		t.Fatal(err)
	}
	g := rc.readUntil("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeFrameSize {
		t.Fatalf("GOAWAY %v, want FRAME_SIZE_ERROR", g.ErrCode)
	}
}
