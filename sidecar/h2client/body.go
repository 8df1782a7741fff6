package h2client

import (
	"errors"
	"io"
	"net/http"
	"sync"

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
	// it reads.
	trailer *http.Header
	tr      http.Header

	mu     sync.Mutex
	cond   sync.Cond
	chunks h2conn.Chunks // the bytes received and not read yet
	err    error         // io.EOF after END_STREAM, or why the stream ended
	closed bool          // the caller closed it: DATA is dropped
	done   bool          // the caller saw its end (finish called)
}

// push appends data; false when the caller closed the body.
func (b *responseBody) push(data []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return false
	}
	b.chunks.Push(data)
	b.cond.Signal()
	return true
}

// end ends the body: at its end (err nil; trailers, possibly nil, go
// into the response's Trailer), or failed with err, which drops what was
// not read (it returns how many bytes, for the connection window).
func (b *responseBody) end(trailer http.Header, err error) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0
	}
	n := 0
	if err != nil {
		b.err = err
		n = b.chunks.Drop()
	} else {
		b.tr = trailer
		b.err = io.EOF
	}
	b.cond.Broadcast()
	return n
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	for b.chunks.Empty() && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if b.chunks.Empty() {
		err := b.err
		first := !b.done
		b.done = true
		b.mu.Unlock()
		if first {
			b.st.finish()
			b.setTrailers(err)
		}
		return 0, err
	}
	n := b.chunks.Read(p)
	// The end comes with the last bytes when it is already here.
	var err error
	if b.chunks.Empty() && errors.Is(b.err, io.EOF) && !b.done {
		err = io.EOF
		b.done = true
	}
	b.mu.Unlock()
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
	if !errors.Is(err, io.EOF) || b.tr == nil || b.trailer == nil {
		return
	}
	if *b.trailer == nil {
		*b.trailer = make(http.Header, len(b.tr))
	}
	for k, vv := range b.tr {
		(*b.trailer)[k] = vv
	}
}

// Close drops what was not read; a stream the peer has not ended is
// reset (CANCEL), so it sends no more.
func (b *responseBody) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	n := b.chunks.Drop()
	done := b.done
	b.done = true
	b.cond.Broadcast()
	b.mu.Unlock()
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
