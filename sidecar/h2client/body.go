package h2client

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
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

	mu   sync.Mutex
	cond sync.Cond
	// chunks hold the bytes received and not read yet: chunks[0][off:],
	// then the others; a chunk goes back to its pool once read.
	chunks []*[]byte
	off    int
	err    error // io.EOF after END_STREAM, or why the stream ended
	closed bool  // the caller closed it: DATA is dropped
	done   bool  // the caller saw its end (finish called)
}

// bodyChunkSizes are the sizes of the buffers response bodies wait in:
// a new chunk is the smallest that holds the DATA payload that needs it,
// so a small body takes a small chunk.
var bodyChunkSizes = [...]int{1 << 10, 2 << 10, 4 << 10, 8 << 10, minFrameSize}

var bodyChunks [len(bodyChunkSizes)]sync.Pool

func getBodyChunk(n int) *[]byte {
	i := 0
	for i < len(bodyChunkSizes)-1 && bodyChunkSizes[i] < n {
		i++
	}
	if b, ok := bodyChunks[i].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, bodyChunkSizes[i])
	return &b
}

func putBodyChunk(b *[]byte) {
	*b = (*b)[:0]
	for i, size := range bodyChunkSizes {
		if cap(*b) == size {
			bodyChunks[i].Put(b)
			return
		}
	}
}

// push appends data; false when the caller closed the body.
func (b *responseBody) push(data []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return false
	}
	for len(data) > 0 {
		var last *[]byte
		if n := len(b.chunks); n > 0 && len(*b.chunks[n-1]) < cap(*b.chunks[n-1]) {
			last = b.chunks[n-1]
		} else {
			last = getBodyChunk(len(data))
			b.chunks = append(b.chunks, last)
		}
		n := copy((*last)[len(*last):cap(*last)], data)
		*last = (*last)[:len(*last)+n]
		data = data[n:]
	}
	b.cond.Signal()
	return true
}

func (b *responseBody) dropFirstLocked() {
	putBodyChunk(b.chunks[0])
	b.chunks[0] = nil
	b.chunks, b.off = b.chunks[1:], 0
}

// dropLocked drops what was not read and returns how many bytes.
func (b *responseBody) dropLocked() int {
	if len(b.chunks) == 0 {
		return 0
	}
	n := -b.off
	for len(b.chunks) > 0 {
		n += len(*b.chunks[0])
		b.dropFirstLocked()
	}
	b.chunks = nil
	return n
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
		n = b.dropLocked()
	} else {
		b.tr = trailer
		b.err = io.EOF
	}
	b.cond.Broadcast()
	return n
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.chunks) == 0 && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if len(b.chunks) == 0 {
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
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		ch := *b.chunks[0]
		k := copy(p[n:], ch[b.off:])
		n += k
		b.off += k
		if b.off == len(ch) {
			b.dropFirstLocked()
		}
	}
	// The end comes with the last bytes when it is already here.
	var err error
	if len(b.chunks) == 0 && errors.Is(b.err, io.EOF) && !b.done {
		err = io.EOF
		b.done = true
	}
	b.mu.Unlock()
	b.st.cc.credit(b.st, n)
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
	n := b.dropLocked()
	done := b.done
	b.done = true
	b.cond.Broadcast()
	b.mu.Unlock()
	st := b.st
	cc := st.cc
	cc.mu.Lock()
	if !st.reset && (!st.remoteDone || !st.localDone) {
		cc.resetLocked(st, st.id, http2.ErrCodeCancel, errBodyClosed)
	}
	cc.creditLocked(st, int64(n))
	cc.flushLocked()
	cc.mu.Unlock()
	cc.closePending()
	if !done {
		st.finish()
	}
	st.waitWriter()
	return nil
}
