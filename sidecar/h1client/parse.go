package h1client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

// errHeaderTooLarge is returned when a response head or trailer section is
// longer than the limit.
var errHeaderTooLarge = errors.New("response header too large")

// readHead appends to buf[:0] the lines of one message head read from br,
// from its first line up to (not including) the empty line that ends it,
// and returns buf. At most limit bytes are read. io.EOF means that br
// ended before the first byte; a head cut short is io.ErrUnexpectedEOF.
func readHead(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	buf = buf[:0]
	read := 0
	lineStart := 0
	for {
		line, err := br.ReadSlice('\n')
		read += len(line)
		if read > limit {
			return buf, errHeaderTooLarge
		}
		buf = append(buf, line...)
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			continue // the rest of a long line follows
		case errors.Is(err, io.EOF) && read == 0:
			return buf, io.EOF
		case errors.Is(err, io.EOF):
			return buf, io.ErrUnexpectedEOF
		default:
			return buf, err
		}
		if l := buf[lineStart:]; len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			return buf[:lineStart], nil
		}
		lineStart = len(buf)
	}
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]", the first line
// of head (without its line end), into resp: Proto, ProtoMajor,
// ProtoMinor, StatusCode and Status (line without the version and its
// space, as net/http sets it). Only HTTP/1.x is accepted.
func parseStatusLine(line string, resp *http.Response) error {
	if len(line) < 12 || line[:7] != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
		len(line) > 12 && line[12] != ' ' {
		return fmt.Errorf("malformed status line %q", clip(line))
	}
	code := 0
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return fmt.Errorf("malformed status code in %q", clip(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return fmt.Errorf("malformed status code in %q", clip(line))
	}
	for i := 13; i < len(line); i++ {
		if c := line[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("invalid byte in status line %q", clip(line))
		}
	}
	switch line[7] {
	case '1':
		resp.Proto = "HTTP/1.1"
	case '0':
		resp.Proto = "HTTP/1.0"
	default:
		resp.Proto = line[:8]
	}
	resp.ProtoMajor, resp.ProtoMinor = 1, int(line[7]-'0')
	resp.StatusCode = code
	resp.Status = line[9:]
	return nil
}

// parseFields parses header field lines ("name: value", each ending in
// CRLF or LF) into h, which must have room for them: field values share
// one backing array, whose slices are appended to when a name repeats.
// Names are canonicalized (http.CanonicalHeaderKey; already canonical
// names, the usual case, are not copied); values are trimmed of spaces
// and tabs. An obsolete line folding, a name that is not a token, a space
// before the colon, or a control character in a value is an error.
func parseFields(lines string, h http.Header) error {
	vals := make([]string, strings.Count(lines, "\n"))
	for lines != "" {
		i := strings.IndexByte(lines, '\n')
		if i < 0 {
			return errors.New("malformed header: no line end")
		}
		line := lines[:i]
		lines = lines[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			if line != "" && (line[0] == ' ' || line[0] == '\t') {
				return fmt.Errorf("obsolete line folding in header: %q", clip(line))
			}
			return fmt.Errorf("malformed header line %q", clip(line))
		}
		name := line[:colon]
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("invalid header field name %q", clip(name))
		}
		v := httptoken.TrimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(v) {
			return fmt.Errorf("invalid header field value for %q", clip(name))
		}
		name = http.CanonicalHeaderKey(name)
		if vv, ok := h[name]; ok {
			h[name] = append(vv, v)
			continue
		}
		vals[0] = v
		h[name] = vals[:1:1]
		vals = vals[1:]
	}
	return nil
}

// countLines is the number of header field lines in lines.
func countLines(lines string) int { return strings.Count(lines, "\n") }

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
