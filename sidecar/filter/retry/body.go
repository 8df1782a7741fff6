package retry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// never start. A failed try is sent again with the copy when the try read
// the body to its end within the limit (Whole), with t itself when it was
// a connect failure that read nothing of it (Untouched); otherwise the
// request is not retried.
//
// Close closes the request's body only once a try has started reading it
// (a transport closes its request's body to stop its writer); a try that
// failed before reading it (a connect failure) leaves it whole for the
// next one.
type Tee struct {
	r     io.ReadCloser
	limit int64

	mu   sync.Mutex
	buf  []byte
	read bool // a read started
	eof  bool
	over bool // more than limit bytes: no copy
}

// NewTee returns a Tee over body that keeps up to limit bytes.
func NewTee(body io.ReadCloser, limit int64) *Tee { return &Tee{r: body, limit: limit} }

// Read reads from the request's body, keeping a copy.
func (t *Tee) Read(p []byte) (int, error) {
	t.mu.Lock()
	t.read = true // before the read, so that Close can end one that blocks
	t.mu.Unlock()
	n, err := t.r.Read(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.over {
		if int64(len(t.buf)+n) > t.limit {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if errors.Is(err, io.EOF) {
		t.eof = true
	}
	return n, err
}

// Close closes the request's body if a try started reading it (see Tee).
func (t *Tee) Close() error {
	t.mu.Lock()
	started := t.read
	t.mu.Unlock()
	if !started {
		return nil
	}
	return t.r.Close()
}

// Whole returns the body when a try read it to its end within the limit:
// the next try sends that copy.
func (t *Tee) Whole() (*Body, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.eof || t.over {
		return nil, false
	}
	return &Body{data: t.buf}, true
}

// AfterFailedTry says how a request whose try failed can go again: with
// the copy when the try read the whole body within the limit (b, true);
// with t itself when the try was a connect failure that read none of it
// (nil, true); otherwise not at all (nil, false).
func (t *Tee) AfterFailedTry(connectFailure bool) (b *Body, replayable bool) {
	if b, ok := t.Whole(); ok {
		return b, true
	}
	return nil, connectFailure && t.Untouched()
}

// Untouched reports whether no try has read from t: after a connect
// failure (the transport never started on the body), the next try sends
// t itself.
func (t *Tee) Untouched() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.read
}
