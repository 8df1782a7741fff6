package h1server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

// statusError is a request the server answers itself with code and
// closes: malformed (400), too large (431), an unsupported transfer
// coding (501) or version (505), an unmet expectation (417).
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return "h1server: " + e.msg }

func badRequest(msg string) error { return &statusError{http.StatusBadRequest, msg} }

var errHeadTooLarge = &statusError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}

// framing is what the head says about the body and the connection.
type framing struct {
	// contentLength of the body: -1 when chunked.
	contentLength  int64
	chunked        bool
	expectContinue bool
	// close: the client asked to close after this request (HTTP/1.0
	// without keep-alive, Connection: close).
	close bool
	// keepAlive10: an HTTP/1.0 client asked for keep-alive.
	keepAlive10 bool
}

// readHead reads one request head from br and returns it as one string:
// the request line and the header lines, each with its line end, without
// the empty line that ends the head (which is discarded with it). Empty
// lines before the request line are skipped (RFC 9112, section 2.2).
// max bounds the head's size (errHeadTooLarge). A connection closed
// before any byte of a head gives io.EOF. slow (may be nil) is called
// once before the first read from the connection beyond what br holds
// (to arm the header timeout only then).
func readHead(br *bufio.Reader, limit int, slow func()) (string, error) {
	armed := false
	more := func(n int) ([]byte, error) {
		if !armed && slow != nil {
			armed = true
			slow()
		}
		return br.Peek(n)
	}
	for skipped := 0; ; skipped++ {
		b, err := more(1)
		if err != nil {
			return "", err
		}
		if b[0] != '\r' && b[0] != '\n' || skipped >= 4 {
			break
		}
		_, _ = br.Discard(1)
	}
	from := 0
	for {
		n := br.Buffered()
		b, _ := br.Peek(n)
		if end, next := headEnd(b, from); end >= 0 {
			if end > limit {
				return "", errHeadTooLarge
			}
			s := string(b[:end])
			_, _ = br.Discard(next)
			return s, nil
		}
		if n > limit {
			return "", errHeadTooLarge
		}
		if n == br.Size() {
			break
		}
		from = max(0, n-2)
		if _, err := more(n + 1); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	// Larger than the buffer: collect it line by line.
	if !armed && slow != nil {
		slow()
	}
	buf := make([]byte, 0, 2*br.Size())
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit+2 {
			return "", errHeadTooLarge
		}
		if err == nil {
			if line := buf[lineStart:]; len(line) == 1 || len(line) == 2 && line[0] == '\r' {
				return string(buf[:lineStart]), nil
			}
			lineStart = len(buf)
			continue
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// headEnd finds the empty line that ends a head in b, searching line ends
// from from: end is the length of the head (up to and with the last
// header line's end), next the length with the empty line; -1 when b
// holds no whole head.
func headEnd(b []byte, from int) (end, next int) {
	for from < len(b) {
		i := indexByte(b[from:], '\n')
		if i < 0 {
			return -1, 0
		}
		i += from
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 1, i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 1, i + 3
		}
		from = i + 1
	}
	return -1, 0
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// nextLine splits s at its first line end; the line is without "\r\n".
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		line, rest = s, ""
	} else {
		line, rest = s[:i], s[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// scratch is per-request memory parseHead fills instead of allocating:
// the URL of a plain target. It lives inside the request's exchange (one
// allocation for both), which is reused for another request only when
// the handler gave the request back (Recycler), so a handler that keeps
// r.URL otherwise keeps a valid URL.
type scratch struct {
	url url.URL
}

// headerMem is the memory of a request's header map: the map and the
// slice its values are cut from. A connection keeps the last request's
// when the handler gave the request back (Recycler), cleared.
type headerMem struct {
	hdr  http.Header
	vals []string
}

// parseHead parses head (from readHead) into r (Method, URL, Proto*,
// RequestURI, Header, Host, Close, TransferEncoding, Trailer,
// ContentLength) and f. Strings in r share head's memory; the header map
// and its values' slice are hm's when it holds them (empty: a recycled
// request's), else allocated at once, and hm holds what r uses when it
// returns; the URL of a plain target is sc's. Body, TLS, RemoteAddr and
// the context are the caller's.
func parseHead(head string, r *http.Request, f *framing, sc *scratch, hm *headerMem) error {
	line, rest := nextLine(head)
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 {
		return badRequest("malformed request line")
	}
	if !validMethod(method) {
		return badRequest("invalid method")
	}
	var major, minor int
	switch proto {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		var ok bool
		if major, minor, ok = http.ParseHTTPVersion(proto); !ok {
			return badRequest("malformed HTTP version")
		}
		if major != 1 {
			return &statusError{http.StatusHTTPVersionNotSupported, "unsupported HTTP version " + proto}
		}
	}
	*f = framing{}
	closeTok := false

	n := strings.Count(rest, "\n")
	if len(rest) > 0 && rest[len(rest)-1] != '\n' {
		n++
	}
	var (
		hdr    http.Header
		vals   []string
		host   string
		nhost  int
		cl     string
		haveCL bool
		te     string
	)
	hdr = hm.hdr
	if hdr == nil {
		hdr = make(http.Header, n)
	}
	if n > 0 {
		if cap(hm.vals) >= n {
			vals = hm.vals[:n]
		} else {
			vals = make([]string, n)
		}
	}
	hm.hdr, hm.vals = hdr, vals
	for rest != "" {
		line, rest = nextLine(rest)
		if line == "" {
			return badRequest("empty header line")
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("malformed header line")
		}
		key, ok := canonicalKey(line[:colon])
		if !ok {
			return badRequest("invalid header name")
		}
		v := httptoken.TrimOWS(line[colon+1:])
		if !validValue(v) {
			return badRequest("invalid header value")
		}
		switch key {
		case "Host":
			nhost++
			host = v
			continue
		case "Content-Length":
			if haveCL && v != cl {
				return badRequest("conflicting Content-Length headers")
			}
			if haveCL {
				continue
			}
			cl, haveCL = v, true
		case "Transfer-Encoding":
			if te != "" {
				return &statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
			}
			te = v
			continue
		case "Connection":
			if httptoken.Contains(v, "close") {
				closeTok = true
			}
			if minor == 0 && httptoken.Contains(v, "keep-alive") {
				f.keepAlive10 = true
			}
		case "Expect":
			if !strings.EqualFold(v, "100-continue") {
				return &statusError{http.StatusExpectationFailed, "unsupported expectation"}
			}
			f.expectContinue = minor >= 1
		}
		vv := hdr[key]
		if vv == nil {
			vals[0] = v
			hdr[key] = vals[:1:1]
			vals = vals[1:]
		} else {
			hdr[key] = append(vv, v)
		}
	}
	f.close = closeTok || minor == 0 && !f.keepAlive10
	f.keepAlive10 = f.keepAlive10 && !f.close

	if nhost > 1 {
		return badRequest("too many Host headers")
	}
	if nhost == 1 && !httpguts.ValidHostHeader(host) {
		return badRequest("malformed Host header")
	}

	r.Method = method
	r.RequestURI = target
	r.Proto, r.ProtoMajor, r.ProtoMinor = proto, major, minor
	r.Header = hdr
	r.Close = f.close
	r.Trailer = nil
	r.TransferEncoding = nil
	if err := parseTarget(r, method, target, &sc.url); err != nil {
		return err
	}
	r.Host = r.URL.Host
	if r.Host == "" {
		r.Host = host
	}
	if minor >= 1 && nhost == 0 && method != http.MethodConnect {
		return badRequest("missing required Host header")
	}
	if p, ok := hdr["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}

	// Body framing (RFC 9112, section 6).
	switch {
	case te != "":
		if !strings.EqualFold(te, "chunked") {
			return &statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
		}
		if minor == 0 {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if haveCL {
			// Request smuggling guard: refuse the ambiguous framing.
			return badRequest("both Transfer-Encoding and Content-Length")
		}
		f.chunked, f.contentLength = true, -1
		r.TransferEncoding = []string{"chunked"}
		if tr := hdr["Trailer"]; len(tr) > 0 {
			if err := declareTrailers(r, tr); err != nil {
				return err
			}
			delete(hdr, "Trailer")
		}
	case haveCL:
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		f.contentLength = n
	}
	r.ContentLength = f.contentLength
	if !f.expectContinue || f.contentLength == 0 {
		f.expectContinue = false
	}
	return nil
}

// parseTarget sets r.URL from the request target: origin-form
// (/path?query), absolute-form (http://host/path: a proxy request), the
// authority-form of CONNECT (host:port), and "*". Plain targets are
// parsed here with one allocation; anything else by url.ParseRequestURI,
// as net/http does; u is where a plain target's URL goes.
func parseTarget(r *http.Request, method, target string, u *url.URL) error {
	if method == http.MethodConnect && target != "" && target[0] != '/' {
		// authority-form
		u, err := url.ParseRequestURI("http://" + target)
		if err != nil || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return badRequest("malformed CONNECT target")
		}
		u.Scheme = ""
		r.URL = u
		return nil
	}
	if fastURL(target, u) {
		r.URL = u
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return badRequest("malformed request target")
	}
	r.URL = u
	return nil
}

// fastURL parses the common targets url.ParseRequestURI would give the
// same result for without escapes: "/path[?query]" and
// "http://host[:port]/path[?query]" with plain characters, into u. False
// means: ask url.ParseRequestURI (u is untouched).
func fastURL(target string, u *url.URL) bool {
	var host string
	if strings.HasPrefix(target, "http://") {
		rest := target[len("http://"):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return false
		}
		host, target = rest[:i], rest[i:]
		for j := 0; j < len(host); j++ {
			if c := host[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':') {
				return false
			}
		}
		if host[len(host)-1] == ':' || strings.Count(host, ":") > 1 {
			return false
		}
	}
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if hasQuery && query == "" {
		return false // ForceQuery
	}
	if len(path) > 1 && path[1] == '/' && host == "" {
		return false // "//x" is an authority to url.Parse
	}
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query, Host: host}
	if host != "" {
		u.Scheme = "http"
	}
	return true
}

// plainPathByte: bytes url's path escaping leaves as they are (so
// RawPath stays empty) and that need no unescaping.
var plainPathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// canonicalKey returns k in canonical form (textproto's), without an
// allocation when k already is canonical or is a common header; ok is
// false for a key that is not a token.
func canonicalKey(k string) (string, bool) {
	canonical := true
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !httpguts.IsTokenRune(rune(c)) {
			return "", false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return k, true
	}
	if len(k) <= 64 {
		var buf [64]byte
		b := buf[:len(k)]
		copy(b, k)
		upper = true
		for i, c := range b {
			if upper && 'a' <= c && c <= 'z' {
				b[i] = c - ('a' - 'A')
			} else if !upper && 'A' <= c && c <= 'Z' {
				b[i] = c + ('a' - 'A')
			}
			upper = c == '-'
		}
		if s, ok := commonHeader[string(b)]; ok {
			return s, true
		}
	}
	return textproto.CanonicalMIMEHeaderKey(k), true
}

// commonHeader interns the canonical names of common headers (read only).
var commonHeader = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Type", "Cookie", "Date", "Expect", "Forwarded", "From",
		"Host", "If-Match", "If-Modified-Since", "If-None-Match", "Origin", "Pragma",
		"Proxy-Authorization", "Proxy-Connection", "Range", "Referer", "Te", "Trailer",
		"Traceparent", "Tracestate", "Transfer-Encoding", "Upgrade", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
		"X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags", "B3",
		"Grpc-Timeout", "Keep-Alive",
	} {
		m[k] = k
	}
	return m
}()

// validValue: no control bytes but tab (httpguts.ValidHeaderFieldValue).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func parseContentLength(s string) (int64, error) {
	if s == "" {
		return 0, badRequest("empty Content-Length")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, badRequest("invalid Content-Length")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, badRequest("invalid Content-Length")
	}
	return n, nil
}

// declareTrailers sets r.Trailer to the names the Trailer header declares
// (values come after the body), refusing the framing ones as net/http does.
func declareTrailers(r *http.Request, vv []string) error {
	for _, v := range vv {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			name = httptoken.TrimOWS(name)
			if name == "" {
				continue
			}
			key, ok := canonicalKey(name)
			if !ok {
				return badRequest("bad trailer key")
			}
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return badRequest("bad trailer key")
			}
			if r.Trailer == nil {
				r.Trailer = http.Header{}
			}
			r.Trailer[key] = nil
		}
	}
	return nil
}
