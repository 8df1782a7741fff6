package h2server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
)

// writeBufSize is how many response body bytes a stream holds before it
// frames them (a DATA frame's default maximum).
const writeBufSize = 16 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

// stream is one request: its http.Request, its body, and the
// http.ResponseWriter its handler writes to.
type stream struct {
	// Under c.mu: the id, windows, the request's Content-Length (-1 if
	// none), both ends' END_STREAM, reset.
	h2conn.Stream
	c      *conn
	req    *http.Request
	cancel context.CancelFunc
	body   *requestBody // nil: none (END_STREAM on HEADERS)

	// Under c.mu.
	sentHead bool // the final HEADERS went out

	// The handler's.
	rh          http.Header
	status      int
	wroteHeader bool
	done        bool
	wb          *[]byte
	trailers    []string // declared with the Trailer header
	respLen     int64    // the Content-Length the handler declared, -1 if none
	wrote       int64    // body bytes the handler wrote
}

var (
	_ http.ResponseWriter = (*stream)(nil)
	_ http.Flusher        = (*stream)(nil)
)

// newStream makes the stream of a request's HEADERS, or returns the code
// of the stream error a malformed request is (RFC 9113 8.1.1, 8.3); bad,
// when not empty, says why a request malformed in a regular field is
// answered 400 before the stream is reset (as net/http answers
// connection-specific fields and TE, with its messages).
func (c *conn) newStream(f *http2.MetaHeadersFrame) (st *stream, code http2.ErrCode, bad string) {
	var method, scheme, authority, path string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path = hf.Value
		default: // :protocol (extended CONNECT is not offered), :status
			return nil, http2.ErrCodeProtocol, ""
		}
	}
	connect := method == http.MethodConnect
	if method == "" || connect && (scheme != "" || path != "" || authority == "") ||
		!connect && (scheme == "" || path == "" || path[0] != '/' && (path != "*" || method != http.MethodOptions)) {
		return nil, http2.ErrCodeProtocol, ""
	}
	regular := f.RegularFields()
	header := make(http.Header, len(regular))
	vals := make([]string, len(regular))
	declLen := int64(-1)
	var cookies []string
	for i, hf := range regular {
		switch hf.Name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return nil, http2.ErrCodeProtocol, fmt.Sprintf("request header %q is not valid in HTTP/2", canonicalKey(hf.Name))
		case "te":
			if hf.Value != "trailers" {
				return nil, http2.ErrCodeProtocol, `request header "TE" may only be "trailers" in HTTP/2`
			}
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || declLen >= 0 && n != declLen {
				return nil, http2.ErrCodeProtocol, "invalid Content-Length"
			}
			declLen = n
		case "host":
			if authority == "" {
				authority = hf.Value
			}
			continue
		case "cookie":
			cookies = append(cookies, hf.Value)
			continue
		}
		k := canonicalKey(hf.Name)
		vals[i] = hf.Value
		if vv, ok := header[k]; ok {
			header[k] = append(vv, hf.Value)
		} else {
			header[k] = vals[i : i+1 : i+1]
		}
	}
	if len(cookies) > 0 {
		header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if f.Truncated {
		// Over the header list limit: answered 431 below, not served.
		return nil, http2.ErrCodeProtocol, ""
	}
	end := f.StreamEnded()
	if end && declLen > 0 {
		return nil, http2.ErrCodeProtocol, fmt.Sprintf("request declared a Content-Length of %d but has no body", declLen)
	}
	var u *url.URL
	var err error
	requestURI := path
	switch {
	case connect:
		u = &url.URL{Host: authority}
		requestURI = authority
	case path == "*":
		u = &url.URL{Path: "*"}
	default:
		u, err = url.ParseRequestURI(path)
		if err != nil {
			return nil, http2.ErrCodeProtocol, ""
		}
	}
	st = &stream{
		Stream: h2conn.Stream{
			ID:      f.StreamID,
			SendWin: c.PeerWindow,
			Inflow:  int64(c.s.streamWindow()),
			DeclLen: declLen,
		},
		c: c,
	}
	var trailer http.Header
	if vv := header["Trailer"]; len(vv) > 0 {
		for _, v := range vv {
			for k := range strings.SplitSeq(v, ",") {
				k = http.CanonicalHeaderKey(textprotoTrim(k))
				if k != "" && httpguts.ValidTrailerHeader(k) {
					if trailer == nil {
						trailer = http.Header{}
					}
					trailer[k] = nil
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel = cancel
	r := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        header,
		ContentLength: declLen,
		Host:          authority,
		RemoteAddr:    c.remoteAddr,
		RequestURI:    requestURI,
		TLS:           c.tls,
		Trailer:       trailer,
	}
	if end {
		r.Body = http.NoBody
		r.ContentLength = 0
	} else {
		st.body = &requestBody{st: st, trailer: trailer}
		st.body.Init()
		st.body.expect = header.Get("Expect") == "100-continue"
		r.Body = st.body
	}
	st.req = r.WithContext(ctx)
	return st, http2.ErrCodeNo, ""
}

func textprotoTrim(s string) string { return strings.Trim(s, " \t") }

// trailerOf is the header of a trailers HEADERS frame; false when it
// holds a field not allowed in trailers.
func trailerOf(f *http2.MetaHeadersFrame) (http.Header, bool) {
	h := make(http.Header, len(f.Fields))
	for _, hf := range f.RegularFields() {
		k := canonicalKey(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			return nil, false
		}
		h[k] = append(h[k], hf.Value)
	}
	return h, true
}

// serve runs the handler and ends the stream.
func (st *stream) serve() {
	c := st.c
	defer st.cancel()
	if !st.runHandler() {
		c.mu.Lock()
		c.resetLocked(st, st.ID, http2.ErrCodeInternal)
		c.FlushLocked()
		c.mu.Unlock()
	} else {
		st.finish()
	}
	st.done = true
	if st.wb != nil {
		*st.wb = (*st.wb)[:0]
		writeBufs.Put(st.wb)
		st.wb = nil
	}
	if st.body != nil {
		_ = st.body.Close()
	}
	c.mu.Lock()
	if !st.RemoteDone {
		// The response is complete; the client need not send the rest.
		c.resetLocked(st, st.ID, http2.ErrCodeNo)
		c.FlushLocked()
	}
	c.mu.Unlock()
}

// runHandler runs the handler; false when it panicked.
func (st *stream) runHandler() (ok bool) {
	defer func() {
		if ok {
			return
		}
		if e := recover(); e != nil && !errors.Is(asError(e), http.ErrAbortHandler) {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			st.c.s.logf("h2server: panic serving %v: %v\n%s", st.c.remoteAddr, e, buf)
		}
	}()
	st.c.s.Handler.ServeHTTP(st, st.req)
	return true
}

func asError(e any) error {
	if err, ok := e.(error); ok {
		return err
	}
	return nil
}

func (st *stream) Header() http.Header {
	if st.rh == nil {
		st.rh = make(http.Header)
	}
	return st.rh
}

func (st *stream) WriteHeader(code int) {
	if st.wroteHeader || st.done {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols {
			st.writeInformational(code, st.rh)
		}
		return
	}
	st.wroteHeader = true
	st.status = code
	st.respLen = declaredLength(st.rh)
}

// errWroteTooMuch: a body longer than its Content-Length is malformed
// (RFC 9113 8.1.1); the write fails, as net/http's.
var errWroteTooMuch = errors.New("h2server: handler wrote more than the declared Content-Length")

// declaredLength is h's Content-Length, -1 if none or not a length.
func declaredLength(h http.Header) int64 {
	vv := h["Content-Length"]
	if len(vv) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(vv[0], 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func (st *stream) Write(p []byte) (int, error) {
	if st.done {
		return 0, errStreamReset
	}
	if !st.wroteHeader {
		st.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(st.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if st.respLen >= 0 && st.wrote+int64(len(p)) > st.respLen {
		return 0, errWroteTooMuch
	}
	st.wrote += int64(len(p))
	if st.req.Method == http.MethodHead {
		return len(p), nil
	}
	if st.wb == nil {
		st.wb, _ = writeBufs.Get().(*[]byte)
	}
	if len(*st.wb)+len(p) <= writeBufSize {
		*st.wb = append(*st.wb, p...)
		return len(p), nil
	}
	if err := st.send(p, false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString lets io.WriteString skip a conversion.
func (st *stream) WriteString(s string) (int, error) {
	if st.wb != nil && len(*st.wb)+len(s) <= writeBufSize && st.wroteHeader && bodyAllowed(st.status) && st.req.Method != http.MethodHead && !st.done &&
		(st.respLen < 0 || st.wrote+int64(len(s)) <= st.respLen) {
		*st.wb = append(*st.wb, s...)
		st.wrote += int64(len(s))
		return len(s), nil
	}
	return st.Write([]byte(s))
}

func (st *stream) Flush() { _ = st.FlushError() }

// FlushError sends the head and the body written so far (reached through
// http.ResponseController).
func (st *stream) FlushError() error {
	if st.done {
		return errStreamReset
	}
	if !st.wroteHeader {
		st.WriteHeader(http.StatusOK)
	}
	return st.send(nil, false, true)
}

// EnableFullDuplex: HTTP/2 is (reached through http.ResponseController).
func (st *stream) EnableFullDuplex() error { return nil }

// send frames the head (if not sent), the buffered body and p, and
// writes them out; flush (http.Flusher): on a goroutine of its own
// (flushSoonLocked), and it reports a write error.
func (st *stream) send(p []byte, end, flush bool) error {
	c := st.c
	st.prepareHead()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.sentHead {
		if err := c.writeHeadLocked(st, false, -1); err != nil {
			return err
		}
	}
	if st.wb != nil && len(*st.wb) > 0 {
		_, err := c.WriteDataLocked(&st.Stream, *st.wb, end && len(p) == 0, true)
		*st.wb = (*st.wb)[:0]
		if err != nil {
			return err
		}
	}
	if len(p) > 0 {
		if _, err := c.WriteDataLocked(&st.Stream, p, end, true); err != nil {
			return err
		}
	}
	if flush {
		// Flush: the frames go out once this goroutine blocks or
		// returns, so that what the handler writes until then (the
		// trailers of a gRPC response after its message) joins them.
		c.FlushSoonLocked()
		return c.ErrLocked()
	}
	// Framed body goes out now (as net/http's does once its buffer is
	// full); frames of other streams queued meanwhile go with it.
	c.FlushLocked()
	return nil
}

// prepareHead notes the trailers the handler declared, before the head
// is sent.
func (st *stream) prepareHead() {
	if st.trailers != nil || st.rh == nil {
		return
	}
	declared := st.rh["Trailer"]
	n := 0
	for _, v := range declared {
		n += strings.Count(v, ",") + 1
	}
	if n > 0 {
		st.trailers = make([]string, 0, n) // one allocation, not one per doubling
	}
	for _, v := range declared {
		for k := range strings.SplitSeq(v, ",") {
			if k = http.CanonicalHeaderKey(textprotoTrim(k)); k != "" {
				st.trailers = append(st.trailers, k)
			}
		}
	}
	if st.trailers == nil {
		st.trailers = []string{}
	}
}

// finish ends the response after the handler returned: the head (with a
// Content-Length when the whole body is buffered), the body, trailers.
func (st *stream) finish() {
	c := st.c
	if !st.wroteHeader {
		st.WriteHeader(http.StatusOK)
	}
	st.prepareHead()
	trailers := st.collectTrailers()
	var body []byte
	if st.wb != nil {
		body = *st.wb
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.Reset {
		return
	}
	if !st.sentHead {
		clen := int64(-1)
		if len(trailers) == 0 && bodyAllowed(st.status) && st.req.Method != http.MethodHead && st.rh["Content-Length"] == nil {
			clen = int64(len(body))
		}
		if c.writeHeadLocked(st, len(body) == 0 && len(trailers) == 0, clen) != nil {
			return
		}
	}
	if !st.LocalDone && (len(body) > 0 || len(trailers) == 0) {
		if _, err := c.WriteDataLocked(&st.Stream, body, len(trailers) == 0, true); err != nil {
			return
		}
	}
	if !st.LocalDone && len(trailers) > 0 {
		if c.writeTrailersLocked(st, trailers) != nil {
			return
		}
	}
	c.FlushLocked()
}

// collectTrailers are the declared trailers set and those set with
// http.TrailerPrefix.
func (st *stream) collectTrailers() []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, k := range st.trailers {
		for _, v := range st.rh[k] {
			out = append(out, hpack.HeaderField{Name: lowerKey(k), Value: v})
		}
	}
	for k, vv := range st.rh {
		if rest, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				out = append(out, hpack.HeaderField{Name: strings.ToLower(rest), Value: v})
			}
		}
	}
	return out
}

// writeInformational sends a 1xx head: with the handler's header for
// WriteHeader, without it for 100 Continue (h nil).
func (st *stream) writeInformational(code int, h http.Header) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.sentHead || st.Reset || c.WaitRoomLocked(nil) != nil {
		return
	}
	c.Hbuf.B = c.Hbuf.B[:0]
	_ = c.Henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(code)})
	c.encodeHeader(h)
	if c.WriteBlockLocked(st.ID, false) == nil {
		c.FlushLocked()
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// writeHeadLocked writes the response's HEADERS (and CONTINUATION).
func (c *conn) writeHeadLocked(st *stream, end bool, clen int64) error {
	if err := c.WaitRoomLocked(nil); err != nil {
		return err
	}
	if st.Reset {
		return errStreamReset
	}
	if st.sentHead {
		return nil
	}
	c.Hbuf.B = c.Hbuf.B[:0]
	_ = c.Henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(st.status)})
	c.encodeHeader(st.rh)
	if clen >= 0 {
		_ = c.Henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(clen, 10)})
	}
	if st.rh["Date"] == nil {
		_ = c.Henc.WriteField(hpack.HeaderField{Name: "date", Value: c.s.dates.get()})
	}
	st.sentHead = true
	if err := c.WriteBlockLocked(st.ID, end); err != nil {
		return err
	}
	if end {
		c.LocalDoneLocked(&st.Stream)
	}
	return nil
}

func (c *conn) writeTrailersLocked(st *stream, trailers []hpack.HeaderField) error {
	if err := c.WaitRoomLocked(nil); err != nil {
		return err
	}
	if st.Reset {
		return errStreamReset
	}
	c.Hbuf.B = c.Hbuf.B[:0]
	for _, hf := range trailers {
		if httpguts.ValidHeaderFieldValue(hf.Value) {
			_ = c.Henc.WriteField(hf)
		}
	}
	if err := c.WriteBlockLocked(st.ID, true); err != nil {
		return err
	}
	c.LocalDoneLocked(&st.Stream)
	return nil
}

// encodeHeader encodes h but the fields HTTP/2 forbids and trailers.
func (c *conn) encodeHeader(h http.Header) {
	for k, vv := range h {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		lk := lowerKey(k)
		if !httpguts.ValidHeaderFieldName(lk) {
			continue
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				_ = c.Henc.WriteField(hpack.HeaderField{Name: lk, Value: v})
			}
		}
	}
}

// requestBody is a request's body: DATA the read loop received, waiting
// for the handler.
type requestBody struct {
	st *stream
	// trailer is the request's Trailer map (nil: none declared); tr, the
	// trailers received (under Mu), which the reader's Read that returns
	// io.EOF (or ReadRest) puts into it, on the reader's goroutine, as
	// net/http's: a handler may look at the declared names while the
	// read loop receives the trailers (the proxy's upstream request
	// shares the map).
	trailer, tr http.Header

	h2conn.Body      // the bytes received and not read yet, the end, Close
	expect      bool // Expect: 100-continue, not answered yet
}

// end ends the body: trailers (a header, possibly nil) with io.EOF, or an
// error.
func (b *requestBody) end(trailer any) {
	if b == nil {
		return
	}
	b.Mu.Lock()
	defer b.Mu.Unlock()
	if b.Err != nil {
		return
	}
	err := io.EOF
	switch t := trailer.(type) {
	case error:
		err = t
	case http.Header:
		// Into Request.Trailer by the reader (setTrailersLocked).
		if b.trailer != nil {
			b.tr = t
		}
	}
	b.EndLocked(err)
}

// setTrailersLocked puts the trailers received into the request's
// Trailer, which the request declared (the Trailer header; none
// declared, none kept), as x/net's. On the reader's goroutine, at the
// body's io.EOF (Mu held).
func (b *requestBody) setTrailersLocked() {
	for k, vv := range b.tr {
		b.trailer[k] = vv
	}
	b.tr = nil
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.expect {
		b.expect = false
		b.st.continue100()
	}
	b.Mu.Lock()
	n, err := b.ReadLocked(p)
	if errors.Is(err, io.EOF) {
		b.setTrailersLocked()
	}
	b.Mu.Unlock()
	if err != nil {
		return 0, err
	}
	b.st.c.Credit(&b.st.Stream, n)
	return n, nil
}

// ReadRest gives the rest of the body at once when the client has ended
// it (END_STREAM, with its trailers if any) and every byte of it is here,
// so no Read would wait: rest is then the caller's and the body is at its
// end. whole is false, and the body left as it was, while more may come,
// after a reset or once the body was closed. retry.Tee takes a gRPC unary
// call's message this way instead of starting the goroutine that reads a
// streamed body.
func (b *requestBody) ReadRest() (rest []byte, whole bool) {
	b.Mu.Lock()
	if b.Closed || !errors.Is(b.Err, io.EOF) {
		b.Mu.Unlock()
		return nil, false
	}
	rest = b.Rest()
	b.setTrailersLocked()
	b.Mu.Unlock()
	b.st.c.Credit(&b.st.Stream, len(rest))
	return rest, true
}

// abort ends the body with err (the stream was reset) and drops what was
// not read; it returns how many bytes it dropped, for the connection
// window. A body received whole keeps its io.EOF if nothing was dropped.
func (b *requestBody) abort(err error) int {
	if b == nil {
		return 0
	}
	b.Mu.Lock()
	defer b.Mu.Unlock()
	n := b.Drop()
	if n > 0 {
		b.Err = nil // received whole but not all read: it fails
	}
	b.EndLocked(err)
	return n
}

// Close drops what was not read; the bytes go back to the windows.
func (b *requestBody) Close() error {
	b.Mu.Lock()
	n, ok := b.CloseLocked()
	b.Mu.Unlock()
	if ok {
		b.st.c.Credit(&b.st.Stream, n)
	}
	return nil
}

// continue100 answers Expect: 100-continue at the first body read.
func (st *stream) continue100() {
	c := st.c
	c.mu.Lock()
	sent := st.sentHead || st.RemoteDone
	c.mu.Unlock()
	if !sent {
		st.writeInformational(http.StatusContinue, nil)
	}
}

func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	case 500:
		return "500"
	}
	return strconv.Itoa(code)
}

// held is how many bytes of buffers b holds.
func (b *requestBody) held() int {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	return b.Held()
}
