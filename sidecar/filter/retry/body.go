package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
)

// Body is a request body read ahead so that it can be sent more than once.
// It is not pooled: a transport may still be reading one try's copy after
// the response came back.
type Body struct {
	data []byte
}

// BufferBody reads r's body into memory when it is at most limit bytes and
// returns it (nil, true when there is no body). The outbound calls it for
// bodies of known length; a body of unknown length goes through a Tee. A larger body is left
// streaming: r.Body is replaced by what was read followed by the rest, and
// replayable is false.
func BufferBody(r *http.Request, limit int64) (b *Body, replayable bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true, nil
	}
	if r.ContentLength > limit {
		return nil, false, nil
	}
	size := r.ContentLength
	if size < 0 {
		size = 512
	}
	var buf bytes.Buffer
	buf.Grow(int(min(size, limit) + 1))
	n, err := io.CopyN(&buf, r.Body, limit+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("retry: read request body: %w", err)
	}
	if n > limit {
		// Too large: stream what was read, then the rest.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), r.Body}
		return nil, false, nil
	}
	return &Body{data: buf.Bytes()}, true, nil
}

// Len is the body's length.
func (b *Body) Len() int64 { return int64(len(b.data)) }

// Reader returns a fresh reader over the body.
func (b *Body) Reader() io.ReadCloser { return io.NopCloser(bytes.NewReader(b.data)) }

// Tee is the body of a request whose length is unknown (a stream: gRPC,
// chunked uploads), sent as it is read while a copy of up to limit bytes
// is kept, so that a failed try can be sent again; BufferBody would hold
// the first try until the client ended its body, and a bidirectional
// stream, whose client sends its next message only after an answer, would
// never start.
//
// Each try reads through its own reader (Try): first what the copy holds,
// then what the client sends next. So a try that failed having sent part
// of the body is sent again whole: the copy up to where the client has
// got, then the live body (Envoy replays a partly sent buffered body the
// same way). Once more than limit bytes have been read no try goes again
// (AfterFailedTry), and the copy keeps only what the current try has not
// had yet.
//
// One goroutine, the pump, reads the client's body, so that the body
// stays open across tries and no two tries read it at once. It is started
// by the first try that wants bytes the copy does not hold, and reads when
// the current try asks, plus one read ahead after a read that gave bytes
// (never more: the client's flow control and a bidirectional stream
// behave as when the try read the body itself, and a short body's end
// reaches the try with its last bytes, so an HTTP/2 transport ends the
// stream on its last DATA frame instead of an empty one). A try's reader
// never reads the client's body itself, so it can be abandoned while the
// pump waits for the client: Close (a transport closes its request's body
// to stop its writer), a later Try, or the end of the try's context
// returns its pending Read at once, and what the pump reads meanwhile is
// kept for the next try. (A try cannot read the client's body on its own
// goroutine: net/http's HTTP/2 transport returns a reset stream's error
// only once its body writer has returned, and a writer blocked in the
// client's Read would hold the retry until the client sent more, which a
// bidirectional stream's client does only after an answer.)
//
// A body that says it was received whole (restReader: h2server's, when
// the client's END_STREAM came and no byte was read yet, as a gRPC unary
// call's HEADERS and DATA usually come in one read) starts no pump: the
// first try that wants bytes takes all of them at once as the copy, of
// known length and ended, so every try replays it and AfterFailedTry
// gives it as a Body; the try's request keeps its unknown length, so the
// hop (HTTP/2 for gRPC and streamed bodies) is what it would have been.
// A body still coming (bidirectional and client-streaming gRPC, uploads)
// goes through the pump.
//
// Tee.Close, when the request is done, stops the pump: it closes the
// client's body when a read is under way (a server's request body ends a
// pending Read on Close; one that waits for the Read, as h1server's does,
// delays Close until the client sends more or goes away, as the server's
// own end of the exchange would) and waits for the pump to return.
type Tee struct {
	src   io.ReadCloser
	limit int64

	mu      sync.Mutex
	asked   sync.Cond // the pump waits on it for want or closed
	buf     []byte    // what the pump read, from body offset base on
	base    int64     // 0 while the copy is whole (not over the limit)
	over    bool      // more than limit bytes were read: no try goes again
	err     error     // the client's body's error; io.EOF at its end
	want    int       // bytes the current try asks for; 0: no ask pending
	ahead   bool      // the pump reads once more without an ask
	reading bool      // a read is asked for or under way
	pumping bool      // the pump was started
	closed  bool
	cur     *teeReader // the latest try's reader
	tries   int
	first   teeReader // the first try's, allocated with the Tee
	wg      sync.WaitGroup
}

// maxRead bounds one read of the client's body; firstRoom is the copy's
// first size; with less room than minRead left the copy grows first.
const (
	maxRead   = 32 << 10
	firstRoom = 2 << 10
	minRead   = 512
)

// restReader is a request body that can give all that is left of it at
// once when the client has ended it and every byte is already here (no
// Read would wait): h2server's. whole is false, and the body left as it
// was, when more may come.
type restReader interface {
	ReadRest() (rest []byte, whole bool)
}

var (
	errTryEnded  = errors.New("retry: request body: the try ended")
	errOverLimit = errors.New("retry: request body: over the retry buffer limit, cannot be sent again")
)

// NewTee returns a Tee over body that keeps up to limit bytes. The caller
// must Close it when the request is done.
func NewTee(body io.ReadCloser, limit int64) *Tee {
	t := &Tee{src: body, limit: limit}
	t.asked.L = &t.mu
	return t
}

// Try returns the body for the next try: a reader that gives what the
// copy holds, then what the client sends next, until ctx (the try's
// context; not nil) ends or it is closed. The previous try's reader ends: its
// pending Read returns and later ones fail. After the copy went over the
// limit (AfterFailedTry said no) the reader fails at once.
func (t *Tee) Try(ctx context.Context) io.ReadCloser {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.first
	if t.tries > 0 {
		r = new(teeReader)
	}
	t.tries++
	*r = teeReader{t: t, ctx: ctx, wake: make(chan struct{}, 1)}
	if c := t.cur; c != nil {
		c.end(errTryEnded)
	}
	t.cur = r
	switch {
	case t.closed:
		r.err = errTryEnded
	case t.over:
		r.err = errOverLimit
	}
	return r
}

// AfterFailedTry says how a request whose try failed can go again: with
// the copy, of known length, when the client's body has ended within the
// limit (b, true); through a new Try when it has not ended and the copy
// is still whole (nil, true), which replays the copy and then continues
// from the client's body, also when the failed try read only part of it
// or none (a connect failure); not at all when more than the limit was
// read or the client's body failed (nil, false).
func (t *Tee) AfterFailedTry() (b *Body, replayable bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.over, t.err != nil && !errors.Is(t.err, io.EOF):
		return nil, false
	case t.err != nil: // io.EOF: the whole body is in the copy
		return &Body{data: t.buf}, true
	}
	return nil, true
}

// Close stops the pump (see Tee) and ends every try's reader. The client's
// body is closed only when a read of it is under way.
func (t *Tee) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if c := t.cur; c != nil {
		c.end(errTryEnded)
	}
	reading := t.pumping && t.reading
	t.asked.Signal()
	t.mu.Unlock()
	var err error
	if reading {
		err = t.src.Close()
	}
	t.wg.Wait()
	return err
}

// ask has the pump read up to n bytes (t.mu held, no read under way).
func (t *Tee) ask(n int) {
	t.reading, t.want = true, n
	if !t.pumping {
		t.pumping = true
		t.wg.Add(1)
		go t.pump()
		return
	}
	t.asked.Signal()
}

// takeWhole makes the copy the client's whole body when it says it was
// received whole (restReader), so no pump starts (t.mu held, before the
// pump started: nothing was read yet). A body over the limit is not sent
// again, as when the pump reads it.
func (t *Tee) takeWhole() bool {
	rr, ok := t.src.(restReader)
	if !ok {
		return false
	}
	rest, whole := rr.ReadRest()
	if !whole {
		return false
	}
	t.buf, t.err = rest, io.EOF
	t.over = int64(len(rest)) > t.limit
	return true
}

// pump reads the client's body into the copy, until the body ends or
// fails or the Tee is closed: one read per ask, and after a read that
// gave bytes one more without an ask (see Tee).
func (t *Tee) pump() {
	defer t.wg.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	size := 0 // of the last ask
	for {
		for t.want == 0 && !t.ahead && !t.closed {
			t.asked.Wait()
		}
		if t.closed {
			return
		}
		asked := t.want > 0
		if asked {
			size = t.want
		}
		t.want, t.ahead, t.reading = 0, false, true
		dst := t.room(size)
		// Readers touch only t.buf[:len(t.buf)], under t.mu; the read
		// fills the room past it.
		t.mu.Unlock()
		n, err := t.src.Read(dst)
		t.mu.Lock()
		t.buf = t.buf[:len(t.buf)+n]
		if !t.over && t.base+int64(len(t.buf)) > t.limit {
			t.over = true
		}
		if err != nil {
			t.err = err
		}
		t.reading = false
		c := t.cur
		// One read ahead of the try: the end of a short body comes with its
		// last bytes, and the next part of a longer one is on its way
		// while the try sends this one.
		t.ahead = asked && n > 0 && err == nil && c != nil && c.err == nil
		if c != nil {
			c.signal()
		}
		if err != nil {
			return
		}
	}
}

// room returns the buffer the next read fills, past what the copy holds,
// at most n bytes (t.mu held): the copy's spare room, or, when less than
// minRead is left, room it grows by (firstRoom first, so a short body
// costs one small allocation, then what the try asks). Over the limit no
// try will go again, so what the current try has had is dropped first.
func (t *Tee) room(n int) []byte {
	n = max(1, min(n, maxRead))
	if t.over {
		k := 0
		if c := t.cur; c != nil && c.off > t.base {
			k = int(c.off - t.base)
		}
		rest := t.buf[k:]
		if cap(t.buf) > 4*maxRead { // the copy from before the limit
			t.buf = append(make([]byte, 0, len(rest)+n), rest...)
		} else {
			t.buf = t.buf[:copy(t.buf, rest)]
		}
		t.base += int64(k)
	}
	if spare := cap(t.buf) - len(t.buf); spare < min(n, minRead) {
		// The first room is small (most streamed bodies are short); once a
		// read has filled the room, the body is likely longer: room for
		// what the try asks.
		grow := n
		if t.base+int64(len(t.buf)) == 0 {
			grow = min(n, firstRoom)
		}
		t.buf = slices.Grow(t.buf, grow)
	}
	n = min(n, cap(t.buf)-len(t.buf))
	return t.buf[len(t.buf) : len(t.buf)+n]
}

// teeReader is one try's body: the copy from offset 0, then what the pump
// reads.
type teeReader struct {
	t    *Tee
	ctx  context.Context
	wake chan struct{} // the pump read, or the reader ended
	off  int64         // body offset of the next byte to give
	err  error         // the reader ended (closed, superseded, over the limit)
}

// Read gives the next bytes of the body, asking the pump for more when
// the try has had all that was read.
func (r *teeReader) Read(p []byte) (int, error) {
	t := r.t
	t.mu.Lock()
	for {
		if r.err != nil {
			t.mu.Unlock()
			return 0, r.err
		}
		end := t.base + int64(len(t.buf))
		if r.off < end {
			if r.off < t.base { // dropped over the limit: cannot happen for the current try
				r.err = errOverLimit
				continue
			}
			n := copy(p, t.buf[r.off-t.base:])
			r.off += int64(n)
			var err error
			if r.off == end && errors.Is(t.err, io.EOF) {
				err = io.EOF // the last bytes with the end, as the body gave them
			}
			t.mu.Unlock()
			return n, err
		}
		if t.err != nil {
			err := t.err
			t.mu.Unlock()
			return 0, err
		}
		if len(p) == 0 {
			t.mu.Unlock()
			return 0, nil
		}
		if err := r.ctx.Err(); err != nil {
			t.mu.Unlock()
			return 0, err
		}
		if !t.pumping && t.takeWhole() {
			continue
		}
		if !t.reading {
			t.ask(len(p))
		}
		t.mu.Unlock()
		select {
		case <-r.wake:
		case <-r.ctx.Done():
		}
		t.mu.Lock()
	}
}

// ReadRest gives all that is left of the try's body at once when the
// whole body is in the copy (the client ended it within the limit) or
// can be taken whole from the client's body (restReader, before anything
// was read): a transport then frames it with the request's head
// (h2client) rather than reading it on a goroutine of its own. The try's
// reader is then at its end; rest is the copy's, read-only. whole is
// false, and the reader left as it was, otherwise.
func (r *teeReader) ReadRest() (rest []byte, whole bool) {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.err != nil || r.ctx.Err() != nil {
		return nil, false
	}
	if !t.pumping && t.err == nil && !t.takeWhole() {
		return nil, false
	}
	if !errors.Is(t.err, io.EOF) || t.base != 0 || r.off > int64(len(t.buf)) {
		return nil, false
	}
	rest = t.buf[r.off:len(t.buf):len(t.buf)]
	r.off = int64(len(t.buf))
	return rest, true
}

// Close ends the reader; the client's body stays open for the next try.
func (r *teeReader) Close() error {
	r.t.mu.Lock()
	r.end(errTryEnded)
	r.t.mu.Unlock()
	return nil
}

// end ends the reader with err unless it has ended (t.mu held).
func (r *teeReader) end(err error) {
	if r.err == nil {
		r.err = err
	}
	r.signal()
}

// signal wakes the reader's pending Read, if any (t.mu held).
func (r *teeReader) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
