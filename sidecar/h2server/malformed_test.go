package h2server

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

// outcome is what the server answered on stream 1: "status 200",
// "RST_STREAM PROTOCOL_ERROR", "GOAWAY PROTOCOL_ERROR", or an error status
// with its body and the reset that follows it:
// `status 400 "why\n", RST_STREAM PROTOCOL_ERROR`.
func (rc *rawClient) outcome() string {
	rc.t.Helper()
	status, body := "", ""
	for {
		f := rc.read()
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = "status " + f.PseudoValue("status")
				if status == "status 200" {
					return status
				}
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				body += string(f.Data())
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				if status != "" {
					return fmt.Sprintf("%s %q, RST_STREAM %s", status, body, f.ErrCode)
				}
				return "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		}
	}
}

// TestMalformedRequests: requests RFC 9113 8.1.1, 8.2 and 8.3 call
// malformed are refused with a stream PROTOCOL_ERROR. One malformed in a
// regular field (connection-specific fields, TE other than trailers, a
// Content-Length that is not one, or with no body) is answered 400 with
// why before the reset, as net/http's server answers connection-specific
// fields and TE; "a server MAY send an HTTP response prior to closing or
// resetting the stream". A body that does not match its Content-Length
// is only found once the handler runs: reset (net/http resets a longer
// one, and fails the handler's read of a shorter one).
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
	bad := func(why string) string { return fmt.Sprintf("status 400 %q, %s", why+"\n", protocolError) }
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
		{"connection", []frame{headers(true, with(get, "connection", "close")...)}, bad(`request header "Connection" is not valid in HTTP/2`)},
		{"transfer-encoding", []frame{headers(true, with(get, "transfer-encoding", "chunked")...)}, bad(`request header "Transfer-Encoding" is not valid in HTTP/2`)},
		{"keep-alive", []frame{headers(true, with(get, "keep-alive", "timeout=5")...)}, bad(`request header "Keep-Alive" is not valid in HTTP/2`)},
		{"proxy-connection", []frame{headers(true, with(get, "proxy-connection", "close")...)}, bad(`request header "Proxy-Connection" is not valid in HTTP/2`)},
		{"upgrade", []frame{headers(true, with(get, "upgrade", "websocket")...)}, bad(`request header "Upgrade" is not valid in HTTP/2`)},
		{"TE other than trailers", []frame{headers(true, with(get, "te", "gzip")...)}, bad(`request header "TE" may only be "trailers" in HTTP/2`)},
		{"a field value with a newline", []frame{headers(true, with(get, "x-a", "a\nb")...)}, protocolError},
		{"Content-Length with END_STREAM on HEADERS", []frame{headers(true, with(post, "content-length", "3")...)}, bad("request declared a Content-Length of 3 but has no body")},
		{"a body longer than its Content-Length", []frame{headers(false, with(post, "content-length", "3")...), data(true, "abcd")}, protocolError},
		{"a body shorter than its Content-Length", []frame{headers(false, with(post, "content-length", "3")...), data(true, "ab")}, protocolError},
		{"trailers before the Content-Length is reached", []frame{headers(false, with(post, "content-length", "3")...), data(false, "ab"), headers(true, "x-t", "1")}, protocolError},
		{"an invalid Content-Length", []frame{headers(false, with(post, "content-length", "3x")...), data(true, "abc")}, bad("invalid Content-Length")},
		{"trailers without END_STREAM", []frame{headers(false, post...), data(false, "ab"), headers(false, "x-t", "1")}, protocolError},
		{"a pseudo-header in trailers", []frame{headers(false, post...), data(false, "ab"), headers(true, ":path", "/")}, protocolError},
		{"CONNECT without :authority", []frame{headers(true, ":method", "CONNECT")}, protocolError},
		{"connection, and no send window for a body", []frame{func(rc *rawClient) {
			_ = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		}, headers(true, with(get, "connection", "close")...)}, fmt.Sprintf("status 400 %q, %s", "", protocolError)},
		{"two Content-Lengths", []frame{headers(false, with(post, "content-length", "3", "content-length", "4")...), data(true, "abc")}, bad("invalid Content-Length")},
		{"connection with a body that follows", []frame{headers(false, with(post, "connection", "close")...), data(true, "abc")}, bad(`request header "Connection" is not valid in HTTP/2`)},
		{"TE with a list", []frame{headers(true, with(get, "te", "trailers, deflate")...)}, bad(`request header "TE" may only be "trailers" in HTTP/2`)},
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
