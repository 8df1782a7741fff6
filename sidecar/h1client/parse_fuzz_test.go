package h1client

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzReadHead reads a response head with readHead (through a 16-byte
// buffer, so lines longer than it are reassembled) and parses it. Whatever
// it accepts, net/textproto must accept too and read the same fields, and
// the result must be a well-formed head: no parse is more lenient than
// net/http's, none panics. Seeds: testdata/fuzz/FuzzReadHead.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.0 404\nx-a: 1\nX-A:2\n\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		head, err := readHead(br, nil, 1024)
		if err != nil {
			if len(head) > 1024 {
				t.Fatalf("read %d bytes past the limit", len(head))
			}
			return
		}
		s := string(head)
		line, fields, _ := strings.Cut(s, "\n")
		line = strings.TrimSuffix(line, "\r")
		var resp http.Response
		if parseStatusLine(line, &resp) != nil {
			return
		}
		h := make(http.Header, countLines(fields))
		if parseFields(fields, h) != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.ProtoMajor != 1 || !strings.HasPrefix(line[9:], resp.Status) {
			t.Fatalf("status line %q parsed as %d %q %s", line, resp.StatusCode, resp.Status, resp.Proto)
		}
		if got := fmt.Sprintf("%s %03d", resp.Proto, resp.StatusCode); got != line[:12] {
			t.Fatalf("status line %q parsed as %q", line, got)
		}
		for k, vv := range h {
			if !httpguts.ValidHeaderFieldName(k) || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("field name %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) || v != strings.Trim(v, " \t") {
					t.Fatalf("field %s value %q", k, v)
				}
			}
		}
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(fields + "\r\n")))
		want, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("accepted fields %q that net/textproto refuses: %v", fields, err)
		}
		if fmt.Sprint(http.Header(want)) != fmt.Sprint(h) {
			t.Fatalf("fields %q: got %v, net/textproto %v", fields, h, want)
		}
	})
}
