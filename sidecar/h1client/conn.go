package h1client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

// aLongTimeAgo is the deadline that aborts a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one connection. Between requests it sits in its hostPool; while
// a request is in flight it belongs to that request's RoundTrip and then
// to its response body.
type conn struct {
	hp     *hostPool
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	head   []byte // scratch for response heads and trailers
	idleAt time.Time
	// reused: the connection has carried a whole exchange before.
	reused bool
	// abortFn is abort as a method value, made once per connection.
	abortFn func()

	// Of the request in flight.
	ctx context.Context
	// The cancellation watch (watch.go): wctx is the context the timer
	// watches once it fires (nil: none in flight), wstop stops the
	// AfterFunc registered then (or at once without a delay). wmu guards
	// both against the timer's goroutine.
	wmu    sync.Mutex
	wctx   context.Context
	wstop  func() bool
	wtimer *time.Timer
	// writing: a body writer goroutine owns bw until it sends its result
	// on writeErr.
	writing  bool
	writeErr chan error
	probe    [1]byte
}

func (c *Client) newConn(hp *hostPool, nc net.Conn) *conn {
	pc := &conn{hp: hp, nc: nc}
	if br, ok := c.readers.Get().(*bufio.Reader); ok {
		br.Reset(nc)
		pc.br = br
	} else {
		pc.br = bufio.NewReaderSize(nc, bufSize)
	}
	if bw, ok := c.writers.Get().(*bufio.Writer); ok {
		bw.Reset(nc)
		pc.bw = bw
	} else {
		pc.bw = bufio.NewWriterSize(nc, bufSize)
	}
	pc.abortFn = pc.abort
	return pc
}

// abort makes the blocked and the next reads and writes on pc fail.
func (pc *conn) abort() { _ = pc.nc.SetDeadline(aLongTimeAgo) }

// close closes the connection and recycles its buffers (the write buffer
// only when no body writer still holds it).
func (pc *conn) close() {
	_ = pc.nc.Close()
	c := pc.hp.c
	if pc.br != nil {
		pc.br.Reset(nil)
		c.readers.Put(pc.br)
		pc.br = nil
	}
	if pc.bw != nil && !pc.writing {
		pc.bw.Reset(nil)
		c.writers.Put(pc.bw)
		pc.bw = nil
	}
}

// finish ends the exchange in flight: it stops the context watch and
// pools the connection when keep holds and nothing went wrong since,
// or closes it.
func (pc *conn) finish(keep bool) {
	if !pc.unwatch() {
		keep = false // the context ended: the deadline is set
	}
	pc.ctx = nil
	if pc.writing {
		if keep {
			t := time.NewTimer(writeWait)
			select {
			case err := <-pc.writeErr:
				pc.writing = false
				keep = err == nil
			case <-t.C:
				keep = false
			}
			t.Stop()
		} else {
			select {
			case werr := <-pc.writeErr:
				_ = werr // the connection closes whatever it was
				pc.writing = false
			default:
			}
		}
	}
	if keep {
		pc.reused = true
		pc.hp.put(pc)
		return
	}
	pc.close()
}

// cause is err, or the request context's cause when it has ended (the
// failure was then the abort's).
func (pc *conn) cause(err error) error {
	if ctx := pc.ctx; ctx != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// roundTrip sends req on pc and reads the response head. On an error pc
// is closed; an error on a reused connection before any response byte is
// a *staleError.
func (pc *conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	pc.ctx = ctx
	pc.watch(ctx)
	closeAfter, werr, ferr := pc.writeRequest(req)
	if ferr != nil {
		pc.finish(false)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, ferr
	}
	resp, got, err := pc.readResponse(req, closeAfter || werr != nil)
	if err == nil {
		return resp, nil
	}
	if pc.writing {
		// The writer's failure (its request body, or the connection)
		// explains more than the read's.
		_ = pc.nc.Close()
		select {
		case e := <-pc.writeErr:
			pc.writing = false
			if e != nil && !got {
				err = e
			}
		default:
		}
	}
	if werr != nil && !got {
		err = werr
	}
	reused := pc.reused
	if cerr := pc.cause(nil); cerr != nil {
		pc.finish(false)
		return nil, cerr
	}
	pc.finish(false)
	var re *readError
	if errors.As(err, &re) {
		return nil, err
	}
	err = fmt.Errorf("h1client: %s %s: %w", req.Method, pc.nc.RemoteAddr(), err)
	if reused && !got && isConnClosed(err) {
		return nil, &staleError{err}
	}
	return nil, err
}

// readError is a failure of the request body (not of the connection).
type readError struct{ err error }

func (e *readError) Error() string { return "h1client: read request body: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// writeRequest writes req's head and, when short enough, its body; a
// longer body, or one of unknown length, is left to a writer goroutine.
// closeAfter says the request asks to close the connection. werr is a
// failure to write on the connection (a response may still come: the
// server can answer early and close); ferr a failure after which nothing
// more can be done on it: the request is invalid, or its body failed.
func (pc *conn) writeRequest(req *http.Request) (closeAfter bool, werr, ferr error) {
	body := req.Body
	orig := body
	if body == http.NoBody {
		body = nil
	}
	cl, ferr := pc.writeHeadTo(req, &body, &closeAfter)
	if ferr != nil {
		if orig != nil {
			_ = orig.Close()
		}
		return false, nil, ferr
	}
	bw := pc.bw
	switch {
	case body == nil:
		werr = bw.Flush()
	case cl >= 0 && cl <= inlineBody:
		werr, ferr = pc.copyBody(body, cl)
		if werr == nil && ferr == nil {
			werr = bw.Flush()
		}
	default:
		if pc.writeErr == nil {
			pc.writeErr = make(chan error, 1)
		}
		pc.writing = true
		go pc.writeBody(body, orig, cl, req.Trailer)
		return closeAfter, nil, nil
	}
	if orig != nil {
		_ = orig.Close()
	}
	return closeAfter, werr, ferr
}

// writeHeadTo buffers the request line and header of req and returns the
// length of the body it announced (-1: chunked). It may replace *body: a
// body that says it is empty (ContentLength 0) is probed, and is nil when
// it is; otherwise it is sent chunked, as a body of unknown length. req is
// not modified.
func (pc *conn) writeHeadTo(req *http.Request, body *io.ReadCloser, closeAfter *bool) (int64, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if method == http.MethodConnect || !httpguts.ValidHeaderFieldName(method) {
		return 0, fmt.Errorf("h1client: method %q not supported", method)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return 0, fmt.Errorf("h1client: invalid Host %q", host)
	}
	cl := req.ContentLength
	if *body != nil && cl == 0 {
		n, err := (*body).Read(pc.probe[:])
		switch {
		case n == 0 && errors.Is(err, io.EOF):
			*body = nil
		case err != nil && !errors.Is(err, io.EOF):
			return 0, &readError{err}
		default:
			*body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(pc.probe[:n]), *body), *body}
			cl = -1
		}
	}
	if *body == nil {
		cl = 0
	}

	bw := pc.bw
	wstr(bw, method)
	_ = bw.WriteByte(' ')
	if err := writeTarget(bw, req.URL); err != nil {
		return 0, err
	}
	wstr(bw, " HTTP/1.1\r\nHost: ")
	wstr(bw, host)
	wstr(bw, "\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return 0, fmt.Errorf("h1client: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return 0, fmt.Errorf("h1client: invalid header field value for %q", k)
			}
			wstr(bw, k)
			wstr(bw, ": ")
			wstr(bw, v)
			wstr(bw, "\r\n")
		}
	}
	*closeAfter = req.Close || httptoken.Any(req.Header["Connection"], "close")
	if req.Close && !httptoken.Any(req.Header["Connection"], "close") {
		wstr(bw, "Connection: close\r\n")
	}
	switch {
	case cl < 0:
		wstr(bw, "Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			wstr(bw, "Trailer: ")
			first := true
			for k := range req.Trailer {
				if !httpguts.ValidHeaderFieldName(k) {
					return 0, fmt.Errorf("h1client: invalid trailer name %q", k)
				}
				if !first {
					wstr(bw, ", ")
				}
				first = false
				wstr(bw, k)
			}
			wstr(bw, "\r\n")
		}
	case cl > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		wstr(bw, "Content-Length: ")
		wbytes(bw, strconv.AppendInt(bw.AvailableBuffer(), cl, 10))
		wstr(bw, "\r\n")
	}
	// A failure to write (when the head outgrew the buffer) is bufio's
	// sticky error: the Flush that follows returns it.
	_, _ = bw.WriteString("\r\n")
	return cl, nil
}

// wstr and wbytes write to bw, whose error is sticky: the Flush that ends
// each write reports it.
func wstr(bw *bufio.Writer, s string)   { _, _ = bw.WriteString(s) }
func wbytes(bw *bufio.Writer, b []byte) { _, _ = bw.Write(b) }

// writeTarget writes the request target of u in origin form (or u.Opaque),
// as url.URL.RequestURI makes it, without building the string.
func writeTarget(bw *bufio.Writer, u *url.URL) error {
	if u.Opaque != "" {
		if strings.HasPrefix(u.Opaque, "//") {
			wstr(bw, u.Scheme)
			_ = bw.WriteByte(':')
		}
		wstr(bw, u.Opaque)
	} else if p := u.EscapedPath(); p != "" {
		wstr(bw, p)
	} else {
		_ = bw.WriteByte('/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		for i := 0; i < len(u.RawQuery); i++ {
			if c := u.RawQuery[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("h1client: invalid byte in query %q", clip(u.RawQuery))
			}
		}
		_ = bw.WriteByte('?')
		wstr(bw, u.RawQuery)
	}
	return nil
}

// copyBody copies cl bytes of body into pc.bw, straight into its buffer
// when they fit (the head and the body then leave in one write).
func (pc *conn) copyBody(body io.Reader, cl int64) (werr, ferr error) {
	bw := pc.bw
	var buf []byte
	if cl > int64(bw.Available()) {
		bp := pc.hp.c.copyBuf()
		defer pc.hp.c.bodies.Put(bp)
		buf = *bp
	}
	for cl > 0 {
		var p []byte
		if buf == nil {
			p = bw.AvailableBuffer()[:min(int64(bw.Available()), cl)]
		} else {
			p = buf[:min(int64(len(buf)), cl)]
		}
		n, err := body.Read(p)
		cl -= int64(n)
		if n > 0 {
			if _, werr = bw.Write(p[:n]); werr != nil {
				return werr, nil
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) && cl > 0:
			return nil, &readError{fmt.Errorf("body shorter than its Content-Length by %d bytes", cl)}
		case errors.Is(err, io.EOF):
		default:
			return nil, &readError{err}
		}
	}
	return nil, nil
}

func (c *Client) copyBuf() *[]byte {
	if bp, ok := c.bodies.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 32<<10)
	return &b
}

// writeBody is the writer goroutine of a long body or one of unknown
// length (sent chunked, each read flushed at once, then trailer). It
// sends its result on pc.writeErr; after a failure of the body it closes
// the connection, so the response read does not wait for the rest.
func (pc *conn) writeBody(body io.Reader, orig io.Closer, cl int64, trailer http.Header) {
	var werr, ferr error
	if cl >= 0 {
		werr, ferr = pc.copyBody(body, cl)
	} else {
		werr, ferr = pc.copyChunked(body, trailer)
	}
	if werr == nil && ferr == nil {
		werr = pc.bw.Flush()
	}
	if orig != nil {
		_ = orig.Close()
	}
	err := werr
	if ferr != nil {
		err = ferr
	}
	pc.writeErr <- err
	if ferr != nil {
		_ = pc.nc.Close()
	}
}

func (pc *conn) copyChunked(body io.Reader, trailer http.Header) (werr, ferr error) {
	bw := pc.bw
	bp := pc.hp.c.copyBuf()
	defer pc.hp.c.bodies.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			wbytes(bw, strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			wstr(bw, "\r\n")
			wbytes(bw, buf[:n])
			wstr(bw, "\r\n")
			if werr = bw.Flush(); werr != nil {
				return werr, nil
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &readError{err}
		}
	}
	wstr(bw, "0\r\n")
	for k, vv := range trailer {
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("h1client: invalid trailer value for %q", k)
			}
			wstr(bw, k)
			wstr(bw, ": ")
			wstr(bw, v)
			wstr(bw, "\r\n")
		}
	}
	_, werr = bw.WriteString("\r\n")
	return werr, nil
}
