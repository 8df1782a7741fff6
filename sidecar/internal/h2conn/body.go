package h2conn

import (
	"net/http"
	"sync"
)

// Body is a received body as its reader sees it: the bytes waiting
// (Chunks), its end (Err: io.EOF after END_STREAM, or why the stream
// ended) and whether the reader closed it, under Mu; the sides' bodies
// embed it and keep what else they need under Mu too.
type Body struct {
	Mu   sync.Mutex
	cond sync.Cond
	Chunks
	Err    error
	Closed bool // the reader closed it: DATA is dropped
}

// Init readies b before its first use.
func (b *Body) Init() { b.cond.L = &b.Mu }

// Add appends data; false when the reader closed b or it ended.
func (b *Body) Add(data []byte) bool {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	if b.Closed || b.Err != nil {
		return false
	}
	b.Push(data)
	b.cond.Signal()
	return true
}

// ReadLocked waits (Mu held) for bytes, the end or the reader's Close,
// and moves what fits of the bytes waiting into p:
// http.ErrBodyReadAfterClose once closed, Err once every byte was read.
func (b *Body) ReadLocked(p []byte) (int, error) {
	for b.Empty() && b.Err == nil && !b.Closed {
		b.cond.Wait()
	}
	if b.Closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.Empty() {
		return 0, b.Err
	}
	return b.Read(p), nil
}

// EndLocked ends b with err (Mu held), once: a reader waiting wakes;
// false when b had ended already.
func (b *Body) EndLocked(err error) bool {
	if b.Err != nil {
		return false
	}
	b.Err = err
	b.cond.Broadcast()
	return true
}

// CloseLocked closes b for its reader (Mu held): what was not read is
// dropped (n bytes, for the windows); false when it was closed already.
func (b *Body) CloseLocked() (n int, ok bool) {
	if b.Closed {
		return 0, false
	}
	b.Closed = true
	n = b.Drop()
	b.cond.Broadcast()
	return n, true
}
