package bodytest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
)

// Body returns n pseudo-random bytes (the same for a seed).
func Body(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed)) //nolint:gosec // G404: test data.
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// Upstream answers the tries of one request (see the package doc).
type Upstream struct {
	// Partial is how much of its body the first request reads before
	// the reset; Prefix, how much a later one reads before GotPrefix
	// is closed; Want, the whole body a later one must get.
	Partial, Prefix int
	Want            []byte

	// Reset is closed once the first request has reset (for HTTP/1.1,
	// once its connection is closed with a TCP reset); GotPrefix once a
	// later request has read Prefix bytes of Want. With Partial -1 the
	// first request does not reset: it closes GotPrefix once it has read
	// Prefix bytes, reads on until its body ends or fails and sends what
	// ended it to FirstEnded (nil: the body ended).
	Reset, GotPrefix chan struct{}
	FirstEnded       chan error

	hits atomic.Int32
}

// NewUpstream returns an Upstream (see its fields).
func NewUpstream(partial, prefix int, want []byte) *Upstream {
	return &Upstream{
		Partial: partial, Prefix: prefix, Want: want,
		Reset: make(chan struct{}), GotPrefix: make(chan struct{}), FirstEnded: make(chan error, 1),
	}
}

// Hits is the number of requests the upstream got.
func (u *Upstream) Hits() int { return int(u.hits.Load()) }

// ServeHTTP implements http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.hits.Add(1) == 1 {
		if u.Partial < 0 {
			_, err := io.ReadFull(r.Body, make([]byte, u.Prefix))
			if err == nil {
				close(u.GotPrefix)
				_, err = io.Copy(io.Discard, r.Body)
			}
			u.FirstEnded <- err
			return
		}
		if _, err := io.ReadFull(r.Body, make([]byte, u.Partial)); err != nil {
			http.Error(w, fmt.Sprintf("first try: reading %d bytes: %v", u.Partial, err), http.StatusTeapot)
			return
		}
		reset(w, r, u.Reset)
		return
	}
	got := make([]byte, u.Prefix)
	if _, err := io.ReadFull(r.Body, got); err != nil {
		http.Error(w, fmt.Sprintf("retry: reading the %d-byte prefix: %v", u.Prefix, err), http.StatusTeapot)
		return
	}
	close(u.GotPrefix)
	rest, err := io.ReadAll(r.Body)
	got = append(got, rest...)
	if err != nil || !bytes.Equal(got, u.Want) {
		http.Error(w, fmt.Sprintf("retry: got %d bytes (%v), want %d byte for byte (first difference at %d)", len(got), err, len(u.Want), diff(got, u.Want)), http.StatusTeapot)
		return
	}
	_, _ = fmt.Fprintf(w, "ok %d", len(got))
}

// reset ends the request abruptly and closes done once it has: over
// HTTP/1.1 the connection is closed with a TCP reset (SO_LINGER 0), so
// the client's next write fails; over HTTP/2 the handler panics with
// http.ErrAbortHandler, which resets the stream.
func reset(w http.ResponseWriter, r *http.Request, done chan struct{}) {
	if r.ProtoMajor >= 2 {
		close(done)
		panic(http.ErrAbortHandler)
	}
	defer close(done)
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	c, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func diff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
