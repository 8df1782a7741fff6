package outbound_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/transport"
)

// step is what the scripted transport does on one try: read n bytes of
// the body (-1: all of it), then answer: "dial" (a connect failure),
// "refused" (the peer could not reach its app) or "ok".
type step struct {
	read   int
	answer string
}

// scriptedTransport plays one step per try and records what each try
// read of its body.
type scriptedTransport struct {
	mu     sync.Mutex
	steps  []step
	bodies []string
}

func (s *scriptedTransport) RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	s.mu.Lock()
	st := s.steps[min(len(s.bodies), len(s.steps)-1)]
	s.mu.Unlock()
	var b []byte
	switch {
	case st.read < 0:
		b, _ = io.ReadAll(req.Body)
	case st.read > 0:
		b = make([]byte, st.read)
		n, _ := io.ReadFull(req.Body, b)
		b = b[:n]
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	h := http.Header{}
	switch st.answer {
	case "dial":
		_ = req.Body.Close() // as net/http does on a failed round trip
		return nil, &transport.DialError{Addr: ep.TunnelAddr, Err: syscall.ECONNREFUSED}
	case "refused":
		_ = req.Body.Close()
		h.Set(mesh.HeaderAppUnreachable, "1")
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: h, Body: http.NoBody, Request: req}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: http.NoBody, Request: req}, nil
}

// serverBody is a request body as a server gives it: reads fail once it
// is closed.
type serverBody struct {
	r      io.Reader
	closed bool
}

func (b *serverBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.r.Read(p)
}

func (b *serverBody) Close() error { b.closed = true; return nil }

// TestRetryStreamedBody: a request body of unknown length is sent as it
// is read (not held until its end for a possible retry: a bidirectional
// stream would never start), and a failed try is sent again whole
// whatever it read of it: none (connect failure), part (the copy, then
// the rest) or all (the copy, of known length). replay_test.go has the
// same over real transports, with the limit and a client going away.
func TestRetryStreamedBody(t *testing.T) {
	const body = "a streamed request body"
	for _, tc := range []struct {
		name       string
		steps      []step
		wantCode   int
		wantBodies []string
	}{
		{"connect failure before any read: the next try streams the body", []step{{0, "dial"}, {-1, "ok"}}, http.StatusOK, []string{"", body}},
		{"refused after reading it all: the next try sends the copy", []step{{-1, "refused"}, {-1, "ok"}}, http.StatusOK, []string{body, body}},
		{"refused after reading part of it: the next try sends the copy, then the rest", []step{{5, "refused"}, {-1, "ok"}}, http.StatusOK, []string{body[:5], body}},
		{"refused twice after reading parts of it", []step{{3, "refused"}, {9, "refused"}, {-1, "ok"}}, http.StatusOK, []string{body[:3], body[:9], body}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &scriptedTransport{steps: tc.steps}
			h := outbound.NewHandler(tables{table(t, true)}, st, slog.New(slog.DiscardHandler))
			req := httptest.NewRequest(http.MethodPost, "http://payment.shop:8080/pay", &serverBody{r: strings.NewReader(body)})
			req.ContentLength = -1
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantCode {
				t.Errorf("status %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			if strings.Join(st.bodies, "|") != strings.Join(tc.wantBodies, "|") {
				t.Errorf("tries read %q, want %q", st.bodies, tc.wantBodies)
			}
		})
	}
}
