package h1server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
)

// maxDrain is how much of a request body the handler left unread the
// server reads and discards to keep the connection (net/http's
// maxPostHandlerReadBytes); with more left it closes the connection.
const maxDrain = 256 << 10

var errChunk = errors.New("h1server: malformed chunked request body")

// body is a request body: Content-Length bytes or chunked, read from the
// connection's reader. Read may run in another goroutine than the
// handler's (a transport copying it upstream), also while the handler
// returns: the exchange's finish closes it under mu.
type body struct {
	mu sync.Mutex
	ex *exchange
	br *bufio.Reader
	// remaining: bytes left of the body (Content-Length) or of the
	// current chunk (chunked).
	remaining int64
	chunked   bool
	// stream: a CONNECT's body, the rest of the connection.
	stream bool
	sawEOF bool
	closed bool
	err    error
}

var _ io.ReadCloser = (*body)(nil)

// Read implements io.Reader; the last bytes come with io.EOF.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	n, err, eof := b.readLocked(p)
	b.mu.Unlock()
	if eof {
		b.ex.c.bodyEOF(b.ex)
	}
	return n, err
}

// Close implements io.Closer: later reads fail; the server discards what
// is left after the handler returns.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// readLocked reads into p; eof reports that this read reached the end.
func (b *body) readLocked(p []byte) (n int, err error, eof bool) {
	switch {
	case b.sawEOF:
		return 0, io.EOF, false
	case b.closed:
		return 0, http.ErrBodyReadAfterClose, false
	case b.err != nil:
		return 0, b.err, false
	case len(p) == 0:
		return 0, nil, false
	}
	if b.ex.expectContinue {
		b.ex.sendContinue()
	}
	if b.chunked && b.remaining == 0 {
		size, err := b.chunkHeader()
		if err != nil {
			b.err = err
			return 0, err, false
		}
		if size == 0 {
			if err := b.readTrailer(); err != nil {
				b.err = err
				return 0, err, false
			}
			b.sawEOF = true
			return 0, io.EOF, true
		}
		b.remaining = size
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err = b.br.Read(p)
	b.remaining -= int64(n)
	if b.stream && errors.Is(err, io.EOF) {
		b.sawEOF = true
		return n, io.EOF, true
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err, false
	}
	if b.remaining > 0 {
		return n, nil, false
	}
	if !b.chunked {
		b.sawEOF = true
		return n, io.EOF, true
	}
	// The chunk's data ends with CRLF.
	line, err := b.br.ReadSlice('\n')
	if err != nil || !(len(line) == 1 || len(line) == 2 && line[0] == '\r') {
		b.err = errChunk
		return n, errChunk, false
	}
	return n, nil, false
}

// chunkHeader reads a chunk-size line: hex size, extensions ignored.
func (b *body) chunkHeader() (int64, error) {
	line, err := b.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, errChunk
	}
	if i := indexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	var size int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == '\r' || c == '\n' || c == ' ' || c == '\t':
			continue
		default:
			return 0, errChunk
		}
		if digits >= 15 {
			return 0, errChunk
		}
		digits++
		size = size<<4 | int64(d)
	}
	if digits == 0 {
		return 0, errChunk
	}
	return size, nil
}

// readTrailer reads the trailer section after the last chunk into the
// request's Trailer (net/http merges every field it reads).
func (b *body) readTrailer() error {
	total := 0
	for {
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return errChunk
		}
		total += len(line)
		if total > b.ex.c.s.maxHeaderBytes() {
			return errChunk
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return nil
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			return errChunk
		}
		key, ok := canonicalKey(k)
		if !ok || !validValue(v) {
			return errChunk
		}
		r := &b.ex.req
		if r.Trailer == nil {
			r.Trailer = http.Header{}
		}
		r.Trailer[key] = append(r.Trailer[key], httptoken.TrimOWS(v))
	}
}

// finish is called when the handler returned: it discards what is left
// (up to maxDrain) and closes the body; keep reports whether the
// connection can serve another request.
func (b *body) finish(continueSent bool) (keep bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.closed = true }()
	if b.sawEOF {
		return true
	}
	if b.err != nil {
		return false
	}
	if b.ex.expectContinue && !continueSent {
		// The client may or may not send the body it was not asked for.
		return false
	}
	if b.stream {
		return false
	}
	if !b.chunked {
		if b.remaining > maxDrain {
			return false
		}
		n, err := b.br.Discard(int(b.remaining))
		b.remaining -= int64(n)
		return err == nil
	}
	b.closed = false
	buf := make([]byte, 4096)
	for drained := 0; drained <= maxDrain; {
		n, err, _ := b.readLocked(buf)
		drained += n
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
