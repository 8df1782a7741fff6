package h2client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
	"github.com/weftmesh/weft/sidecar/internal/h2key"
)

var (
	errStreamReset      = errors.New("h2client: stream reset")
	errBodyClosed       = errors.New("h2client: response body closed")
	errHeaderListSize   = errors.New("h2client: request header list larger than the peer's SETTINGS_MAX_HEADER_LIST_SIZE")
	errStreamIDsExhaust = errors.New("h2client: connection ran out of stream ids")
	errReqBodyTooLong   = errors.New("h2client: request body longer than its ContentLength")
	errReqBodyTooShort  = errors.New("h2client: request body shorter than its ContentLength")
)

// stream is one request on a connection.
type stream struct {
	// Under cc.mu: the id, windows, the response's Content-Length (-1 if
	// none), both ends' END_STREAM, reset.
	h2conn.Stream
	cc  *conn
	req *http.Request

	// Under cc.mu.
	infoBytes  int64 // of the 1xx heads' header lists, bounded as one head's
	gotHead    bool  // the final response HEADERS came
	writing    bool  // the body writer runs
	callerDone bool  // the caller is done with the stream (finish called)
	bodyClosed bool  // the request body was closed, or is queued to be
	delivered  bool
	resp       *http.Response // the head, once delivered
	err        error          // or why the stream failed before it

	headCh chan struct{} // closed once resp or err is set
	// rest is what the windows did not take yet of a body received
	// whole: the body writer sends it instead of reading the body.
	rest []byte
	// wdone is closed when the body writer returned (it closed the
	// request body); nil when none runs.
	wdone chan struct{}
	body  *responseBody
	// stop unregisters the cancellation of the request's context, once
	// the caller is done with the stream and the body writer, if any,
	// returned (under cc.mu while it runs): until both, cancelling the
	// context resets the stream.
	stop func() bool
}

// restReader is a request body that can give all that is left of it at
// once when its sender has ended it and every byte is already here (no
// Read would wait): sidecar/h2server's request body, passed on by the
// telemetry and retry layers. Such a body is framed on the caller's
// goroutine with the request's HEADERS: no body writer, one write.
type restReader interface {
	ReadRest() (rest []byte, whole bool)
}

// roundTrip sends req on cc, whose stream getConn reserved, and waits
// for the response head.
func (cc *conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	hasBody := req.Body != nil && req.Body != http.NoBody
	var rest []byte
	whole := false
	if hasBody {
		if rr, ok := req.Body.(restReader); ok {
			rest, whole = rr.ReadRest()
		}
	}
	st := &stream{cc: cc, req: req, headCh: make(chan struct{})}
	st.DeclLen = -1
	st.body = &responseBody{st: st}
	st.body.Init()
	trailers := len(req.Trailer) > 0

	cc.mu.Lock()
	cc.reserved--
	var err error
	if whole && req.ContentLength > 0 && int64(len(rest)) != req.ContentLength {
		// Nothing is sent of a body that does not match its length.
		err = bodyLenError(int64(len(rest)), req.ContentLength)
	} else {
		err = cc.startLocked(st, hasBody, trailers)
	}
	if err != nil {
		cc.noteIdleLocked()
		cc.mu.Unlock()
		cc.closePending()
		closeBody(req)
		return nil, err
	}
	if whole {
		// What the send windows take now leaves with the HEADERS; the
		// rest, if any, goes by a body writer, so that the caller waits
		// for the windows as it waits for the head: the response, or
		// the context's end.
		rest, err = cc.WriteDataLocked(&st.Stream, rest, !trailers, false)
		if err == nil && len(rest) == 0 && trailers {
			err = cc.writeTrailersLocked(st, req.Trailer)
		}
		if err != nil && !st.Reset {
			cc.resetLocked(st, st.ID, http2.ErrCodeCancel, err)
		}
		if err == nil && len(rest) > 0 {
			st.rest, whole = rest, false
		}
	}
	if hasBody && !whole {
		st.writing = true
		st.wdone = make(chan struct{})
	}
	// Registered before the write, which a cancel ends when it stalls,
	// and before the body writer starts: it reads st.stop when it
	// returns. (A context already done runs cancel on a goroutine of its
	// own, which waits for mu.)
	if ctx.Done() != nil {
		st.stop = context.AfterFunc(ctx, func() { st.cancel(context.Cause(ctx)) })
	}
	cc.FlushForLocked(&st.Stream)
	cc.mu.Unlock()
	cc.closePending()
	if whole {
		closeBody(req)
	}
	if st.writing && !cc.cl.goWithConn(st.writeBody) {
		cc.mu.Lock()
		st.writing = false
		cc.resetLocked(st, st.ID, http2.ErrCodeCancel, ErrClosed)
		cc.mu.Unlock()
		closeBody(req)
		close(st.wdone)
	}
	<-st.headCh
	// deliver set resp or err before closing headCh.
	if st.err != nil {
		st.finish()
		st.waitWriter()
		return nil, st.err
	}
	resp := st.resp
	if resp.Body == http.NoBody {
		st.finish()
	}
	return resp, nil
}

// startLocked opens st: an id, and its HEADERS queued (END_STREAM when
// there is nothing to send after them).
func (cc *conn) startLocked(st *stream, hasBody, trailers bool) error {
	for {
		if cc.ErrLocked() != nil {
			// The connection failed after getConn reserved a stream on
			// it: nothing of the request was sent.
			return fmt.Errorf("%w: %w", ErrNotProcessed, cc.ErrLocked())
		}
		if cc.goAway {
			return fmt.Errorf("%w: connection going away (GOAWAY)", ErrNotProcessed)
		}
		if cc.nextID > maxStreamID {
			return fmt.Errorf("%w: %w", ErrNotProcessed, errStreamIDsExhaust)
		}
		if cc.Buffered() < maxPending || cc.ErrLocked() != nil {
			break
		}
		// An error of waitRoomLocked is the connection's failure
		// (cc.ErrLocked(), above): the request was not sent.
		_ = cc.WaitRoomLocked(nil)
	}
	end := !hasBody
	if err := cc.encodeRequestLocked(st.req, hasBody, trailers); err != nil {
		return err
	}
	st.ID = cc.nextID
	cc.nextID += 2
	st.SendWin = cc.PeerWindow
	st.Inflow = int64(cc.cl.streamWindow)
	cc.streams[st.ID] = st
	if err := cc.WriteBlockLocked(st.ID, end); err != nil {
		return err
	}
	if end {
		st.LocalDone = true
	}
	return nil
}

// encodeRequestLocked encodes req's head into hbuf, after checking it
// against the peer's header list limit (before the encoder's table
// changes).
func (cc *conn) encodeRequestLocked(req *http.Request, hasBody, trailers bool) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	connect := method == http.MethodConnect
	var path string
	if !connect {
		path = req.URL.RequestURI()
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("h2client: invalid Host %q", host)
	}
	var clen string
	if req.ContentLength > 0 { // 0 with a body: unknown
		clen = strconv.FormatInt(req.ContentLength, 10)
	}
	size := int64(len(":method")+len(method)+len(":authority")+len(host)) + 2*32
	if !connect {
		size += int64(len(":scheme")+len(req.URL.Scheme)+len(":path")+len(path)) + 2*32
	}
	if clen != "" {
		size += int64(len("content-length")+len(clen)) + 32
	}
	for k, vv := range req.Header {
		if skipField(k) {
			continue
		}
		lk := h2key.Lower(k)
		if !httpguts.ValidHeaderFieldName(lk) {
			return fmt.Errorf("h2client: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h2client: invalid header field value for %q", k)
			}
			size += int64(len(lk)+len(v)) + 32
		}
	}
	if trailers {
		// The trailer field: the keys, comma-separated.
		size += int64(len("trailer")+len(req.Trailer)-1) + 32
		for k := range req.Trailer {
			size += int64(len(k))
		}
	}
	if cc.peerMaxList >= 0 && size > cc.peerMaxList {
		return errHeaderListSize
	}
	cc.Hbuf.B = cc.Hbuf.B[:0]
	e := cc.Henc
	_ = e.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	if !connect {
		_ = e.WriteField(hpack.HeaderField{Name: ":scheme", Value: req.URL.Scheme})
	}
	_ = e.WriteField(hpack.HeaderField{Name: ":authority", Value: host})
	if !connect {
		_ = e.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	}
	for k, vv := range req.Header {
		if skipField(k) {
			continue
		}
		lk := h2key.Lower(k)
		for _, v := range vv {
			if lk == "te" && v != "trailers" {
				continue
			}
			_ = e.WriteField(hpack.HeaderField{Name: lk, Value: v, Sensitive: lk == "authorization" || lk == "proxy-authorization"})
		}
	}
	if trailers {
		keys := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			keys = append(keys, h2key.Lower(k))
		}
		_ = e.WriteField(hpack.HeaderField{Name: "trailer", Value: strings.Join(keys, ",")})
	}
	if clen != "" {
		_ = e.WriteField(hpack.HeaderField{Name: "content-length", Value: clen})
	}
	return nil
}

// skipField: fields HTTP/2 forbids or that the client sets itself.
func skipField(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Keep-Alive", "Host", "Content-Length", "Trailer":
		return true
	}
	return false
}

// writeTrailersLocked ends st with its request's trailers.
func (cc *conn) writeTrailersLocked(st *stream, tr http.Header) error {
	if err := cc.WaitRoomLocked(&st.Stream); err != nil {
		return err
	}
	if st.Reset {
		return errStreamReset
	}
	if cc.peerMaxList >= 0 {
		// Checked before the encoder's table changes, as the head.
		var size int64
		for k, vv := range tr {
			for _, v := range vv {
				size += int64(len(k)+len(v)) + 32
			}
		}
		if size > cc.peerMaxList {
			return errHeaderListSize
		}
	}
	cc.Hbuf.B = cc.Hbuf.B[:0]
	for k, vv := range tr {
		lk := h2key.Lower(k)
		if !httpguts.ValidHeaderFieldName(lk) {
			continue
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				_ = cc.Henc.WriteField(hpack.HeaderField{Name: lk, Value: v})
			}
		}
	}
	if err := cc.WriteBlockLocked(st.ID, true); err != nil {
		return err
	}
	cc.LocalDoneLocked(&st.Stream)
	return nil
}

// bodyBufs are the body writers' read buffers.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, minFrameSize); return &b }}

// writeBody sends the request body as it is read, on a goroutine of the
// stream's own (the Client's wait group): DATA frames within the send
// windows, then END_STREAM or the trailers; or, for a body received
// whole, what the windows did not take with the HEADERS (rest). A body
// that fails resets the stream. It closes the body when done; a reset
// closes it sooner, which ends a pending Read.
func (st *stream) writeBody() {
	cc := st.cc
	req := st.req
	if st.rest != nil {
		st.sendData(st.rest, true)
	} else {
		bp, _ := bodyBufs.Get().(*[]byte)
		var sent int64
		for {
			n, rerr := req.Body.Read(*bp)
			eof := errors.Is(rerr, io.EOF)
			sent += int64(n)
			// A body that does not match its ContentLength (0: unknown)
			// is not sent under it (as x/net's).
			if cl := req.ContentLength; cl > 0 && (rerr == nil || eof) && (sent > cl || eof && sent != cl) {
				rerr, eof = bodyLenError(sent, cl), false
			}
			if rerr != nil && !eof {
				cc.mu.Lock()
				cc.resetLocked(st, st.ID, http2.ErrCodeCancel, fmt.Errorf("h2client: request body: %w", rerr))
				cc.FlushForLocked(&st.Stream)
				cc.mu.Unlock()
				break
			}
			if n == 0 && !eof {
				continue
			}
			if !st.sendData((*bp)[:n], eof) || eof {
				break
			}
		}
		bodyBufs.Put(bp)
	}
	cc.mu.Lock()
	st.writing = false
	closeIt := !st.bodyClosed
	st.bodyClosed = true
	stop := st.stopLocked()
	cc.mu.Unlock()
	cc.closePending()
	if stop != nil {
		stop()
	}
	if closeIt {
		_ = req.Body.Close()
	}
	close(st.wdone)
}

// bodyLenError is the error of a request body of n bytes whose
// ContentLength says cl.
func bodyLenError(n, cl int64) error {
	if n > cl {
		return fmt.Errorf("%w (%d)", errReqBodyTooLong, cl)
	}
	return fmt.Errorf("%w (%d < %d)", errReqBodyTooShort, n, cl)
}

// sendData sends p, the body's last bytes when eof (then END_STREAM, or
// the trailers); false when the stream was reset.
func (st *stream) sendData(p []byte, eof bool) bool {
	cc := st.cc
	trailers := eof && len(st.req.Trailer) > 0
	cc.mu.Lock()
	_, err := cc.WriteDataLocked(&st.Stream, p, eof && !trailers, true)
	if err == nil && trailers {
		err = cc.writeTrailersLocked(st, st.req.Trailer)
	}
	if err != nil && !st.Reset {
		cc.resetLocked(st, st.ID, http2.ErrCodeCancel, err)
	}
	cc.FlushForLocked(&st.Stream)
	cc.mu.Unlock()
	return err == nil
}

// waitWriter returns once the body writer, if any, returned: the request
// body is closed and no longer used (as net/http's transport, the caller
// may reuse what the body holds once RoundTrip failed or the response
// body was closed). The stream has ended or was reset, so the writer's
// pending Read was ended by the body's Close.
func (st *stream) waitWriter() {
	if st.wdone != nil {
		<-st.wdone
	}
}

// stopBodyWriter has the request body closed (once mu is released), so
// that the body writer's pending Read ends (cc.mu held).
func (st *stream) stopBodyWriter() {
	if st.writing && !st.bodyClosed {
		st.bodyClosed = true
		st.cc.closeLaterLocked(st.req.Body)
	}
}

// cancel resets the stream when the request's context ends, and ends a
// write of the stream's caller or body writer that stalled (the peer
// does not read): that fails the connection, as a write timeout does,
// but the caller does not wait for the write timeout.
func (st *stream) cancel(cause error) {
	cc := st.cc
	cc.mu.Lock()
	if !st.Reset {
		if st.RemoteDone && st.LocalDone {
			// Complete: nothing to reset, and the body, whose end came,
			// stays readable to it (end does nothing after io.EOF), as
			// x/net's.
			st.Reset = true
			if n := st.body.end(nil, cause); n > 0 {
				cc.CreditLocked(nil, int64(n))
			}
		} else {
			cc.resetLocked(st, st.ID, http2.ErrCodeCancel, cause)
		}
		cc.FlushLocked()
	}
	cc.BreakWriteLocked(&st.Stream)
	cc.mu.Unlock()
	cc.closePending()
}

// finish: the caller is done with the stream (the head failed, or the
// body ended or was closed). The context's cancellation is unregistered
// unless the body writer still sends (a response may end before the
// request body): then it still resets the stream, which stops the
// writer, and the writer unregisters it when it returns.
func (st *stream) finish() {
	if st.wdone == nil {
		// No body writer: st.stop is the caller's alone.
		if st.stop != nil {
			st.stop()
			st.stop = nil
		}
		return
	}
	cc := st.cc
	cc.mu.Lock()
	st.callerDone = true
	stop := st.stopLocked()
	cc.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// stopLocked takes the context's cancellation to unregister once the
// caller is done and the body writer returned (cc.mu held).
func (st *stream) stopLocked() func() bool {
	if !st.callerDone || st.writing || st.stop == nil {
		return nil
	}
	stop := st.stop
	st.stop = nil
	return stop
}

// deliver gives the caller waiting in roundTrip the response head or an
// error (cc.mu held); only the first counts.
func (st *stream) deliver(resp *http.Response, err error) {
	if st.delivered {
		return
	}
	st.delivered = true
	st.resp, st.err = resp, err
	close(st.headCh)
}

// responseOf makes the response of a HEADERS frame; informational is
// true for a 1xx head (dropped), err when the head is malformed.
func (st *stream) responseOf(f *http2.MetaHeadersFrame) (resp *http.Response, informational bool, err error) {
	var status string
	for _, hf := range f.PseudoFields() {
		if hf.Name != ":status" || status != "" {
			return nil, false, fmt.Errorf("h2client: malformed response: pseudo-header %q", hf.Name)
		}
		status = hf.Value
	}
	code, cerr := strconv.Atoi(status)
	if cerr != nil || len(status) != 3 || code < 100 {
		return nil, false, fmt.Errorf("h2client: malformed response status %q", status)
	}
	if code < 200 {
		if code == http.StatusSwitchingProtocols {
			return nil, false, errors.New("h2client: 101 Switching Protocols over HTTP/2")
		}
		return nil, true, nil
	}
	regular := f.RegularFields()
	header := make(http.Header, len(regular))
	vals := make([]string, len(regular))
	declLen := int64(-1)
	var trailer http.Header
	for i, hf := range regular {
		k := h2key.Canonical(hf.Name)
		switch k {
		case "Content-Length":
			n, perr := strconv.ParseInt(hf.Value, 10, 64)
			if perr != nil || n < 0 || declLen >= 0 && n != declLen {
				return nil, false, fmt.Errorf("h2client: malformed response Content-Length %q", hf.Value)
			}
			declLen = n
		case "Trailer":
			for t := range strings.SplitSeq(hf.Value, ",") {
				if t = http.CanonicalHeaderKey(strings.TrimSpace(t)); t != "" {
					if trailer == nil {
						trailer = http.Header{}
					}
					trailer[t] = nil
				}
			}
		}
		vals[i] = hf.Value
		if vv, ok := header[k]; ok {
			header[k] = append(vv, hf.Value)
		} else {
			header[k] = vals[i : i+1 : i+1]
		}
	}
	resp = &http.Response{
		Status:        statusLine(code),
		StatusCode:    code,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        header,
		Trailer:       trailer,
		ContentLength: declLen,
		Request:       st.req,
	}
	noBody := st.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	if !noBody {
		st.DeclLen = declLen
	}
	if f.StreamEnded() {
		resp.Body = http.NoBody
		if declLen < 0 {
			resp.ContentLength = 0
		}
	} else {
		resp.Body = st.body
		st.body.trailer = &resp.Trailer
	}
	return resp, false, nil
}

func statusLine(code int) string {
	switch code {
	case http.StatusOK:
		return "200 OK"
	case http.StatusNotFound:
		return "404 Not Found"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// trailerOf is the trailers of a trailers HEADERS frame: canonical
// names and values in pairs (responseBody.tr), never nil.
func trailerOf(f *http2.MetaHeadersFrame) []string {
	regular := f.RegularFields()
	tr := make([]string, 0, 2*len(regular))
	for _, hf := range regular {
		tr = append(tr, h2key.Canonical(hf.Name), hf.Value)
	}
	return tr
}
