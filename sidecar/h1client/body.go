package h1client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

// readResponse reads the response to req (skipping 1xx) and sets up its
// body. got says some of a response arrived before a failure. closeAfter
// says the connection cannot carry another request.
func (pc *conn) readResponse(req *http.Request, closeAfter bool) (_ *http.Response, got bool, _ error) {
	limit := pc.hp.c.maxHeader
	// The response and its body are one allocation (made once, also when
	// 1xx responses come first), reused only once the caller gave it back
	// (Recycle).
	var rb *respBody
	for n1xx := 0; ; n1xx++ {
		head, err := readHead(pc.br, pc.head, limit)
		if cap(head) <= 64<<10 {
			pc.head = head[:0]
		}
		got = got || len(head) > 0
		if err != nil {
			if errors.Is(err, errHeaderTooLarge) {
				err = fmt.Errorf("%w: more than %d bytes", err, limit)
			}
			return nil, got, err
		}
		// One string for the whole head: the status and every header
		// value are slices of it.
		s := string(head)
		line, fields, _ := strings.Cut(s, "\n")
		line = strings.TrimSuffix(line, "\r")
		if rb == nil {
			rb = pc.hp.c.newRespBody()
		}
		rb.resp = http.Response{Request: req}
		resp := &rb.resp
		if err := parseStatusLine(line, resp); err != nil {
			return nil, true, err
		}
		if resp.StatusCode/100 == 1 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil, true, errors.New("unexpected 101 Switching Protocols (upgrades are not forwarded)")
			}
			if n1xx >= max1xx {
				return nil, true, errors.New("too many 1xx informational responses")
			}
			continue
		}
		resp.Header = pc.hp.c.newHeader(countLines(fields))
		if err := parseFields(fields, resp.Header); err != nil {
			return nil, true, err
		}
		if err := pc.frame(req, rb, closeAfter); err != nil {
			return nil, true, err
		}
		return resp, true, nil
	}
}

// Body framing modes.
const (
	modeLength  = iota // Content-Length
	modeChunked        // Transfer-Encoding: chunked
	modeEOF            // until the server closes
)

// respBody is a response with the body that reads it, allocated together.
type respBody struct {
	resp http.Response
	body body
}

// frame sets rb's response body from its framing (RFC 9112 section 6.3)
// and, when there is none, ends the exchange.
func (pc *conn) frame(req *http.Request, rb *respBody, closeAfter bool) error {
	resp := &rb.resp
	h := resp.Header
	conn := h["Connection"]
	closeAfter = closeAfter || httptoken.Any(conn, "close") ||
		resp.ProtoMinor == 0 && !httptoken.Any(conn, "keep-alive")
	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified
	mode := modeEOF
	resp.ContentLength = -1
	if te, ok := h["Transfer-Encoding"]; ok {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return fmt.Errorf("unsupported transfer encoding %q", te)
		}
		if !noBody {
			delete(h, "Transfer-Encoding")
			delete(h, "Content-Length")
			resp.TransferEncoding = []string{"chunked"}
		}
		mode = modeChunked
	} else if cl, ok := h["Content-Length"]; ok {
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1]
		}
		resp.ContentLength = n
		mode = modeLength
	}
	if noBody {
		if resp.StatusCode == http.StatusNoContent {
			resp.ContentLength = 0
		}
		resp.Body = http.NoBody
		resp.Close = closeAfter
		pc.finish(!closeAfter)
		return nil
	}
	if mode == modeEOF {
		closeAfter = true
	}
	resp.Close = closeAfter
	if mode == modeLength && resp.ContentLength == 0 {
		resp.Body = http.NoBody
		pc.finish(!closeAfter)
		return nil
	}
	if mode == modeChunked {
		if err := declareTrailer(resp); err != nil {
			return err
		}
	}
	b := &rb.body
	*b = body{pc: pc, nc: pc.nc, resp: resp, rb: rb, mode: mode, remaining: resp.ContentLength, keep: !closeAfter}
	if c := pc.hp.c; c.recycleHeaders {
		b.headers, b.responses = &c.headers, &c.responses
	}
	if mode == modeChunked {
		b.chunked = httputil.NewChunkedReader(pc.br)
	}
	resp.Body = b
	return nil
}

// parseContentLength parses the Content-Length values; repeated equal
// values are one (RFC 9110 section 8.6), differing ones an error.
func parseContentLength(values []string) (int64, error) {
	v := httptoken.TrimOWS(values[0])
	for _, o := range values[1:] {
		if httptoken.TrimOWS(o) != v {
			return 0, fmt.Errorf("conflicting Content-Length values %q", values)
		}
	}
	if v == "" || v[0] < '0' || v[0] > '9' {
		return 0, fmt.Errorf("invalid Content-Length %q", clip(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid Content-Length %q", clip(v))
	}
	return n, nil
}

// declareTrailer moves the Trailer header's names into resp.Trailer (with
// no values yet), as net/http does, so that a proxy can announce them.
func declareTrailer(resp *http.Response) error {
	vv, ok := resp.Header["Trailer"]
	if !ok {
		return nil
	}
	delete(resp.Header, "Trailer")
	for _, v := range vv {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = httptoken.TrimOWS(name); name == "" {
				continue
			}
			name = http.CanonicalHeaderKey(name)
			switch name {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return fmt.Errorf("bad trailer name %q", name)
			}
			if resp.Trailer == nil {
				resp.Trailer = make(http.Header)
			}
			resp.Trailer[name] = nil
		}
	}
	return nil
}

// maxRecycledHeader bounds the fields of a header map that is recycled
// (a larger one is left to the GC).
const maxRecycledHeader = 32

// recycleHeader gives the response's header map, cleared, to the Client
// for a later response, when it recycles them; the response is left
// without one.
func (b *body) recycleHeader() {
	h := b.resp.Header
	if b.headers == nil || h == nil {
		return
	}
	b.resp.Header = nil
	if len(h) <= maxRecycledHeader {
		clear(h)
		b.headers.Put(h)
	}
}

// body is a response body. It holds the connection until the end of the
// body, then pools it (or closes it). Read and Close may be called from
// different goroutines: a Close while a Read blocks closes the connection.
type body struct {
	mu   sync.Mutex
	pc   *conn    // nil once the connection is released
	nc   net.Conn // pc's, for a Close while a Read holds mu
	resp *http.Response
	// state: 0 while the connection is held, 1 once released, 2 when a
	// Close from another goroutine closed it under a Read.
	state     atomic.Int32
	mode      int
	remaining int64
	chunked   io.Reader
	keep      bool
	err       error // sticky: io.EOF at the end
	closed    bool
	// headers: the Client's recycled header maps when it recycles them
	// (WithHeaderRecycling); Close hands resp.Header back. responses: the
	// Client's recycled responses then (Recycle); rb is the allocation
	// that holds this body and its response.
	headers   *sync.Pool
	responses *sync.Pool
	rb        *respBody
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.read(p)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		b.err = io.EOF
		b.release(b.keep)
		return n, io.EOF
	}
	if b.state.Load() == 2 {
		err = http.ErrBodyReadAfterClose
	} else {
		err = b.pc.cause(err)
	}
	b.err = err
	b.release(false)
	return n, err
}

func (b *body) read(p []byte) (int, error) {
	br := b.pc.br
	switch b.mode {
	case modeLength:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			return n, io.EOF
		}
		if errors.Is(err, io.EOF) {
			return n, io.ErrUnexpectedEOF
		}
		return n, err
	case modeChunked:
		n, err := b.chunked.Read(p)
		if errors.Is(err, io.EOF) {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
		}
		return n, err
	default:
		return br.Read(p)
	}
}

// readTrailer reads the trailer section after the last chunk into
// resp.Trailer.
func (b *body) readTrailer() error {
	pc := b.pc
	lines, err := readHead(pc.br, pc.head, pc.hp.c.maxHeader)
	if cap(lines) <= 64<<10 {
		pc.head = lines[:0]
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading trailer: %w", err)
	}
	if len(lines) == 0 {
		return nil
	}
	s := string(lines)
	t := make(http.Header, countLines(s))
	if err := parseFields(s, t); err != nil {
		return fmt.Errorf("reading trailer: %w", err)
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = t
		return nil
	}
	for k, vv := range t {
		b.resp.Trailer[k] = vv
	}
	return nil
}

// release gives the connection back (keep) or closes it, once.
func (b *body) release(keep bool) {
	pc := b.pc
	b.pc = nil
	if !b.state.CompareAndSwap(0, 1) {
		keep = false
	}
	pc.finish(keep)
}

// Close ends the body. The connection is kept when the rest of a body of
// known length is already buffered; otherwise it is closed.
func (b *body) Close() error {
	if !b.mu.TryLock() {
		// A Read blocks on another goroutine: unblock it.
		if b.state.CompareAndSwap(0, 2) {
			_ = b.nc.Close()
		}
		return nil
	}
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.recycleHeader()
	if b.err != nil {
		return nil
	}
	b.err = http.ErrBodyReadAfterClose
	keep := false
	if b.mode == modeLength && b.keep && b.remaining <= int64(b.pc.br.Buffered()) {
		_, err := b.pc.br.Discard(int(b.remaining))
		keep = err == nil
	}
	b.release(keep)
	return nil
}
