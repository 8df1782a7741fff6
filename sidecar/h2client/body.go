package h2client

import (
	"errors"
	"io"
	"net/http"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
)

// responseBody is a response's body: DATA the read loop received,
// waiting for the caller. The bytes the caller consumed (or dropped)
// go back to the peer's windows.
type responseBody struct {
	st *stream
	// trailer is the response's Trailer field, filled with the
	// trailers (tr) by the Read that returns io.EOF, on the caller's
	// goroutine (as net/http's): the caller may look at the field while
	// it reads. tr holds the trailers' canonical names and values in
	// pairs, not a map: they go into the map the head declared (a gRPC
	// response's), one map per response, not two.
	trailer *http.Header
	tr      []string
	gotTr   bool // a trailers HEADERS frame came (tr may be empty)

	h2conn.Body      // the bytes received and not read yet, the end, Close
	done        bool // the caller saw its end (finish called; under Mu)
}

// end ends the body: at its end (err nil; trailers, possibly nil, go
// into the response's Trailer), or failed with err, which drops what was
// not read (it returns how many bytes, for the connection window).
func (b *responseBody) end(trailer []string, err error) int {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	if b.Err != nil {
		return 0
	}
	if err == nil {
		b.tr, b.gotTr = trailer, trailer != nil
		b.EndLocked(io.EOF)
		return 0
	}
	n := b.Drop()
	b.EndLocked(err)
	return n
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.Mu.Lock()
	n, err := b.ReadLocked(p)
	if err != nil {
		// Closed (done since), or at its end.
		first := !b.done
		b.done = true
		b.Mu.Unlock()
		if first {
			b.st.finish()
			b.setTrailers(err)
		}
		return 0, err
	}
	// The end comes with the last bytes when it is already here.
	if b.Empty() && errors.Is(b.Err, io.EOF) && !b.done {
		err = io.EOF
		b.done = true
	}
	b.Mu.Unlock()
	b.st.cc.Credit(&b.st.Stream, n)
	if err != nil {
		b.st.finish()
		b.setTrailers(err)
	}
	return n, err
}

// setTrailers fills the response's Trailer at the body's io.EOF (its
// reader's goroutine; tr is no longer written once err is set).
func (b *responseBody) setTrailers(err error) {
	if !errors.Is(err, io.EOF) || !b.gotTr || b.trailer == nil {
		return
	}
	h := *b.trailer
	if h == nil {
		h = make(http.Header, len(b.tr)/2)
		*b.trailer = h
	}
	// A name's values replace what the head declared (nil); each value
	// is a slice of one backing array.
	vals := make([]string, len(b.tr)/2)
	for i := 0; i < len(b.tr); i += 2 {
		k, v := b.tr[i], b.tr[i+1]
		vals[i/2] = v
		if seenName(b.tr[:i], k) {
			h[k] = append(h[k], v)
		} else {
			h[k] = vals[i/2 : i/2+1 : i/2+1]
		}
	}
}

// seenName reports whether pairs (name, value, ...) has name as a name.
func seenName(pairs []string, name string) bool {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] == name {
			return true
		}
	}
	return false
}

// Close drops what was not read; a stream the peer has not ended is
// reset (CANCEL), so it sends no more.
func (b *responseBody) Close() error {
	b.Mu.Lock()
	n, ok := b.CloseLocked()
	done := b.done
	b.done = true
	b.Mu.Unlock()
	if !ok {
		return nil
	}
	st := b.st
	cc := st.cc
	cc.mu.Lock()
	if !st.Reset && (!st.RemoteDone || !st.LocalDone) {
		cc.resetLocked(st, st.ID, http2.ErrCodeCancel, errBodyClosed)
	}
	cc.CreditLocked(&st.Stream, int64(n))
	cc.FlushForLocked(&st.Stream)
	cc.mu.Unlock()
	cc.closePending()
	if !done {
		st.finish()
	}
	st.waitWriter()
	return nil
}
