package retry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Body is a request body read ahead so that it can be sent more than once.
// It is not pooled: a transport may still be reading one try's copy after
// the response came back.
type Body struct {
	data []byte
}

// BufferBody reads r's body into memory when it is at most limit bytes and
// returns it (nil, true when there is no body). A larger body is left
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
