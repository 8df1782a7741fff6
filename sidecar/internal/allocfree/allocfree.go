package allocfree

import (
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/sidecar/lb"
)

// Transport answers every request with the same 200 response, its body
// ("ok") rewound each time, so that it allocates nothing itself.
type Transport struct {
	Resp *http.Response
	body rewindBody
	// Needs is what NeedsEndpoint answers: whether the dialers read the
	// endpoint from the request context (transport.Mesh does only for an
	// endpoint whose connect timeout is not its default).
	Needs bool
	// Releases is what ReleasesRequest answers: whether the transport
	// keeps nothing of a request once it answered (transport.Mesh does
	// for a request without a body on its HTTP/1.1 pools), so the
	// forwarder recycles the hop's request.
	Releases bool
}

// NewTransport returns a Transport whose NeedsEndpoint answers needs.
func NewTransport(needs bool) *Transport {
	t := &Transport{body: rewindBody{data: []byte("ok")}, Needs: needs}
	t.Resp = &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}}, Body: &t.body, ContentLength: 2}
	return t
}

// NeedsEndpoint implements the handlers' optional transport method.
func (t *Transport) NeedsEndpoint(*lb.Endpoint) bool { return t.Needs }

// ReleasesRequest implements the forwarder's optional transport method.
func (t *Transport) ReleasesRequest(*http.Request, *lb.Endpoint) bool { return t.Releases }

// RecycleResponse implements the forwarder's optional transport method:
// the one response is kept.
func (t *Transport) RecycleResponse(*http.Response) {}

// RoundTrip returns the response with its body rewound.
func (t *Transport) RoundTrip(*http.Request, *lb.Endpoint) (*http.Response, error) {
	t.body.off = 0
	return t.Resp, nil
}

type rewindBody struct {
	data []byte
	off  int
}

func (b *rewindBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (*rewindBody) Close() error { return nil }

// Writer is a ResponseWriter that discards the body and keeps the status;
// Reset empties its header map (not replaced) between requests.
type Writer struct {
	H    http.Header
	Code int
}

// NewWriter returns a Writer with an empty header map.
func NewWriter() *Writer { return &Writer{H: http.Header{}} }

// Reset readies w for the next request without allocating.
func (w *Writer) Reset() {
	clear(w.H)
	w.Code = 0
}

func (w *Writer) Header() http.Header         { return w.H }
func (w *Writer) WriteHeader(code int)        { w.Code = code }
func (w *Writer) Write(p []byte) (int, error) { return len(p), nil }

// Bound serves one request first (the metric series and the pools), then
// fails t unless serve, which answers one request into w, answers 200 and
// allocates at most bound times per request (testing.AllocsPerRun).
func Bound(t testing.TB, what string, w *Writer, serve func(), bound float64) {
	t.Helper()
	serve()
	if w.Code != http.StatusOK {
		t.Fatalf("%s: status %d", what, w.Code)
	}
	if n := testing.AllocsPerRun(200, serve); n > bound {
		t.Errorf("%s: %.1f allocations per request, want at most %.0f", what, n, bound)
	}
	if w.Code != http.StatusOK {
		t.Fatalf("%s: status %d", what, w.Code)
	}
}
