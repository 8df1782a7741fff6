package h1server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

var (
	errAfterReturn = errors.New("h1server: ResponseWriter used after the handler returned")
	errHijackAgain = errors.New("h1server: connection already hijacked")
)

// exchange is one request and its response: the http.ResponseWriter the
// handler gets (also http.Flusher and http.Hijacker, and what
// http.ResponseController needs).
type exchange struct {
	c      *conn
	header http.Header
	body   body

	status int
	// wroteHeader: the handler called WriteHeader (or Write); headSent:
	// the head is in the connection's writer.
	wroteHeader, headSent bool
	done                  bool
	hijacked              bool
	isHead                bool
	chunked               bool
	// closeAfter: close the connection after this response.
	closeAfter bool
	// Expect: 100-continue: the 100 goes out at the first body read
	// unless the response head was written first.
	expectContinue bool
	// contentLength the handler declared, -1 when none.
	contentLength int64
	written       int64
	contMu        sync.Mutex
	continueSent  bool
	noContinue    bool

	// bodyDone: the request body was read to its end (or has none).
	bodyDone atomic.Bool

	// scratch holds the request's URL (parseHead).
	scratch scratch
	// req is the request the handler gets. (The fields are ordered so
	// that the exchange and its 8-byte malloc header fit the 576-byte size
	// class.)
	req http.Request
}

var (
	_ http.ResponseWriter = (*exchange)(nil)
	_ http.Flusher        = (*exchange)(nil)
	_ http.Hijacker       = (*exchange)(nil)
)

// Header implements http.ResponseWriter. After the handler returned it
// is a throwaway map: the response's went to the connection's next one.
func (w *exchange) Header() http.Header {
	if w.done {
		return http.Header{}
	}
	return w.header
}

// WriteHeader implements http.ResponseWriter. Informational codes (1xx but
// 101) are written at once; the final head is written with the first body
// bytes that do not fit the buffer, at Flush, or when the handler returns.
func (w *exchange) WriteHeader(code int) {
	if w.done || w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.contMu.Lock()
		defer w.contMu.Unlock()
		if code == http.StatusContinue {
			if w.continueSent {
				return
			}
			w.continueSent = true
		}
		bw := w.c.bw
		w.writeStatusLine(bw, code)
		for k, vv := range w.header {
			writeField(bw, k, vv)
		}
		_, _ = bw.WriteString("\r\n")
		_ = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.expectContinue {
		w.contMu.Lock()
		w.noContinue = true
		w.contMu.Unlock()
	}
	if cl := w.header["Content-Length"]; len(cl) > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if c := w.header["Connection"]; len(c) > 0 {
		for _, v := range c {
			if httptoken.Contains(v, "close") {
				w.closeAfter = true
			}
		}
	}
}

// Write implements http.ResponseWriter.
func (w *exchange) Write(p []byte) (int, error) {
	if w.done {
		return 0, errAfterReturn
	}
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHead {
		return len(p), nil
	}
	c := w.c
	if !w.headSent {
		if w.contentLength < 0 && len(c.pend)+len(p) <= cap(c.pend) {
			// Unknown length: hold it; a response that ends within the
			// buffer gets a Content-Length.
			c.pend = append(c.pend, p...)
			return len(p), nil
		}
		w.sendHead(false)
	}
	return w.writeBody(p)
}

func (w *exchange) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
		n, err := bw.Write(p)
		_, _ = bw.WriteString("\r\n")
		return n, err
	}
	return bw.Write(p)
}

// Flush implements http.Flusher.
func (w *exchange) Flush() { _ = w.FlushError() }

// FlushError flushes the response (http.ResponseController.Flush).
func (w *exchange) FlushError() error {
	if w.done {
		return errAfterReturn
	}
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(false)
	}
	return w.c.bw.Flush()
}

// EnableFullDuplex (http.ResponseController) lets the handler read the
// request body while it writes the response: always so here.
func (w *exchange) EnableFullDuplex() error { return nil }

// Hijack implements http.Hijacker: the connection is the caller's, with
// the reader holding what the client sent past the request head.
func (w *exchange) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.done {
		return nil, nil, errAfterReturn
	}
	if w.hijacked {
		return nil, nil, errHijackAgain
	}
	if w.wroteHeader && !w.headSent {
		w.sendHead(false)
	}
	c := w.c
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	c.hijack()
	w.hijacked = true
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

// sendHead writes the response head and the body held so far into the
// connection's writer; final: the handler returned, so the held body is
// all of it.
func (w *exchange) sendHead(final bool) {
	w.headSent = true
	c := w.c
	bw := c.bw
	allowed := bodyAllowed(w.status)
	trailers := len(w.header["Trailer"]) > 0 && w.req.ProtoMinor >= 1
	cl := int64(-1)
	switch {
	case !allowed:
	case w.req.Method == http.MethodConnect && w.status < 300:
		// A tunnel: the bytes that follow are the stream's, until close.
		w.closeAfter = true
	case w.isHead:
		if w.contentLength >= 0 {
			cl = w.contentLength
		} else if final && w.written > 0 {
			cl = w.written
		}
	case trailers:
		w.chunked = true
	case w.contentLength >= 0:
		cl = w.contentLength
	case final:
		cl = w.written
	case w.req.ProtoMinor >= 1:
		w.chunked = true
	default:
		// HTTP/1.0, length unknown: the end of the connection ends it.
		w.closeAfter = true
	}
	if w.req.Close || c.s.shuttingDown() {
		w.closeAfter = true
	}
	if w.expectContinue {
		// The client waits for a 100 that will not come before this
		// head; it may or may not send the body: close after.
		w.contMu.Lock()
		if !w.continueSent {
			w.closeAfter = true
		}
		w.contMu.Unlock()
	}

	w.writeStatusLine(bw, w.status)
	_, hasDate := w.header["Date"]
	for k, vv := range w.header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			if k == "Content-Length" && !allowed && w.status == http.StatusNotModified {
				writeField(bw, k, vv)
			}
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		writeField(bw, k, vv)
	}
	if !hasDate {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(c.s.date())
		_, _ = bw.WriteString("\r\n")
	}
	if cl >= 0 {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), cl, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && w.req.ProtoMinor >= 1:
		_, _ = bw.WriteString("Connection: close\r\n")
	case !w.closeAfter && w.req.ProtoMinor == 0:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(c.pend) > 0 {
		p := c.pend
		c.pend = c.pend[:0]
		_, _ = w.writeBody(p)
	}
}

func (w *exchange) writeStatusLine(bw *bufio.Writer, code int) {
	if w.req.ProtoMinor == 0 {
		_, _ = bw.WriteString("HTTP/1.0 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.1 ")
	}
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	_ = bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}

// writeField writes "k: v\r\n" for each value; a key that is not a token
// is left out, and line breaks in a value become spaces (net/http does
// both).
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !validFieldName(k) {
		return
	}
	for _, v := range vv {
		_, _ = bw.WriteString(k)
		_, _ = bw.WriteString(": ")
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		}
		_, _ = bw.WriteString(strings.TrimSpace(v))
		_, _ = bw.WriteString("\r\n")
	}
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// bodyAllowed: 1xx, 204 and 304 responses have no body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// sendContinue writes "100 Continue" at the first read of a body the
// client is waiting to send, unless the response head was written.
func (w *exchange) sendContinue() {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if w.continueSent || w.noContinue {
		return
	}
	w.continueSent = true
	bw := w.c.bw
	_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = bw.Flush()
}

// finish completes the response after the handler returned: the head
// (with Content-Length when the whole body was held), the last chunk and
// trailers; it reports whether the connection can serve another request.
func (w *exchange) finish() (keep bool) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(true)
	}
	w.done = true
	if w.chunked {
		w.writeTrailers()
	}
	if w.contentLength >= 0 && w.written != w.contentLength && bodyAllowed(w.status) && !w.isHead {
		w.closeAfter = true
	}
	w.contMu.Lock()
	sent := w.continueSent
	w.contMu.Unlock()
	if w.req.Body != http.NoBody && !w.body.finish(sent) {
		w.closeAfter = true
	}
	return !w.closeAfter
}

// writeTrailers ends a chunked body: the last chunk, then the declared
// trailers (values set after the head) and http.TrailerPrefix ones.
func (w *exchange) writeTrailers() {
	bw := w.c.bw
	_, _ = bw.WriteString("0\r\n")
	for _, v := range w.header["Trailer"] {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = httptoken.TrimOWS(name); name == "" {
				continue
			}
			key, ok := canonicalKey(name)
			if !ok {
				continue
			}
			if vv := w.header[key]; len(vv) > 0 {
				writeField(bw, key, vv)
			}
		}
	}
	for k, vv := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			writeField(bw, k[len(http.TrailerPrefix):], vv)
		}
	}
	_, _ = bw.WriteString("\r\n")
}
