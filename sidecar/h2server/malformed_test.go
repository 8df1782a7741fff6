package h2server

import (
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

// outcome is what the server answered on stream 1: "status 200",
// "RST_STREAM PROTOCOL_ERROR" or "GOAWAY PROTOCOL_ERROR".
func (rc *rawClient) outcome() string {
	rc.t.Helper()
	for {
		f := rc.read()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return "status " + f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		}
	}
}

// TestMalformedRequests: requests RFC 9113 8.1.1, 8.2 and 8.3 call
// malformed are refused with a stream PROTOCOL_ERROR. (net/http's HTTP/2
// server answers connection-specific fields and TE other than trailers
// with 400, and lets the handler answer a body that does not match its
// Content-Length after its read failed; both are allowed.)
func TestMalformedRequests(t *testing.T) {
	get := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	post := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/"}
	with := func(base []string, kv ...string) []string { return append(append([]string(nil), base...), kv...) }
	type frame func(rc *rawClient)
	headers := func(end bool, kv ...string) frame {
		return func(rc *rawClient) {
			_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block(kv...), EndStream: end, EndHeaders: true})
		}
	}
	data := func(end bool, s string) frame {
		return func(rc *rawClient) { _ = rc.fr.WriteData(1, end, []byte(s)) }
	}
	const protocolError = "RST_STREAM PROTOCOL_ERROR"
	tests := []struct {
		name   string
		frames []frame
		want   string
	}{
		{"a valid GET", []frame{headers(true, get...)}, "status 200"},
		{"a valid POST with Content-Length", []frame{headers(false, with(post, "content-length", "3")...), data(true, "abc")}, "status 200"},
		{"trailers after the body", []frame{headers(false, with(post, "content-length", "3")...), data(false, "abc"), headers(true, "x-t", "1")}, "status 200"},
		{"TE: trailers", []frame{headers(true, with(get, "te", "trailers")...)}, "status 200"},
		{"no :method", []frame{headers(true, ":scheme", "http", ":authority", "x", ":path", "/")}, protocolError},
		{"no :path", []frame{headers(true, ":method", "GET", ":scheme", "http", ":authority", "x")}, protocolError},
		{"empty :path", []frame{headers(true, ":method", "GET", ":scheme", "http", ":authority", "x", ":path", "")}, protocolError},
		{"no :scheme", []frame{headers(true, ":method", "GET", ":authority", "x", ":path", "/")}, protocolError},
		{"a :status in a request", []frame{headers(true, with(get, ":status", "200")...)}, protocolError},
		{"an unknown pseudo-header", []frame{headers(true, with(get, ":foo", "bar")...)}, protocolError},
		{"a pseudo-header after a regular one", []frame{headers(true, "x-a", "1", ":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")}, protocolError},
		{"a pseudo-header twice", []frame{headers(true, with(get, ":path", "/b")...)}, protocolError},
		{"an upper-case header name", []frame{headers(true, with(get, "X-Upper", "1")...)}, protocolError},
		{"connection", []frame{headers(true, with(get, "connection", "close")...)}, protocolError},
		{"transfer-encoding", []frame{headers(true, with(get, "transfer-encoding", "chunked")...)}, protocolError},
		{"keep-alive", []frame{headers(true, with(get, "keep-alive", "timeout=5")...)}, protocolError},
		{"proxy-connection", []frame{headers(true, with(get, "proxy-connection", "close")...)}, protocolError},
		{"upgrade", []frame{headers(true, with(get, "upgrade", "websocket")...)}, protocolError},
		{"TE other than trailers", []frame{headers(true, with(get, "te", "gzip")...)}, protocolError},
		{"a field value with a newline", []frame{headers(true, with(get, "x-a", "a\nb")...)}, protocolError},
		{"Content-Length with END_STREAM on HEADERS", []frame{headers(true, with(post, "content-length", "3")...)}, protocolError},
		{"a body longer than its Content-Length", []frame{headers(false, with(post, "content-length", "3")...), data(true, "abcd")}, protocolError},
		{"a body shorter than its Content-Length", []frame{headers(false, with(post, "content-length", "3")...), data(true, "ab")}, protocolError},
		{"trailers before the Content-Length is reached", []frame{headers(false, with(post, "content-length", "3")...), data(false, "ab"), headers(true, "x-t", "1")}, protocolError},
		{"an invalid Content-Length", []frame{headers(false, with(post, "content-length", "3x")...), data(true, "abc")}, protocolError},
		{"trailers without END_STREAM", []frame{headers(false, post...), data(false, "ab"), headers(false, "x-t", "1")}, protocolError},
		{"a pseudo-header in trailers", []frame{headers(false, post...), data(false, "ab"), headers(true, ":path", "/")}, protocolError},
		{"CONNECT without :authority", []frame{headers(true, ":method", "CONNECT")}, protocolError},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, serve(t, &Server{Handler: handler}))
			for _, f := range tc.frames {
				f(rc)
			}
			if got := rc.outcome(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
