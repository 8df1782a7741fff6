package proxy_test

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/transport"
)

// fake records the request it gets and answers with resp or err.
type fake struct {
	got  *http.Request
	resp *http.Response
	err  error
}

func (f *fake) RoundTrip(req *http.Request, _ *lb.Endpoint) (*http.Response, error) {
	f.got = req
	return f.resp, f.err
}

func TestRemoveHopHeaders(t *testing.T) {
	h := http.Header{
		"Connection":       {"X-A, keep-alive", "x-b"},
		"X-A":              {"1"},
		"X-B":              {"2"},
		"Keep-Alive":       {"timeout=5"},
		"Proxy-Connection": {"keep-alive"},
		"Upgrade":          {"websocket"},
		"Te":               {"trailers"},
		"X-Keep":           {"3"},
	}
	proxy.RemoveHopHeaders(h)
	if len(h) != 1 || h.Get("X-Keep") != "3" {
		t.Errorf("after RemoveHopHeaders: %v", h)
	}
}

func TestForward(t *testing.T) {
	ep := &lb.Endpoint{Addr: "127.0.0.9:8080"}
	log := slog.New(slog.DiscardHandler)
	t.Run("request and response rewriting", func(t *testing.T) {
		upstream := &http.Response{
			StatusCode:    http.StatusCreated,
			Header:        http.Header{"X-Up": {"1"}, "Connection": {"close"}, "Content-Type": {"text/plain"}},
			Body:          io.NopCloser(strings.NewReader("hello")),
			ContentLength: -1,
			Trailer:       http.Header{"X-Sum": {"abc"}},
		}
		f := &fake{resp: upstream}
		req := httptest.NewRequest("GET", "http://payment.shop:8080/a/b?c=d", nil)
		req.Header.Set("Te", "trailers, deflate")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("X-E2e", "1")
		w := httptest.NewRecorder()
		proxy.NewForwarder(f, log).Forward(w, req, ep, "c")

		out := f.got
		if out.URL.Path != "/a/b" || out.URL.RawQuery != "c=d" || out.Host != "payment.shop:8080" || out.RequestURI != "" {
			t.Errorf("upstream request URL %v host %q uri %q", out.URL, out.Host, out.RequestURI)
		}
		if out.Header.Get("X-Hop") != "" || out.Header.Get("Connection") != "" || out.Header.Get("Te") != "trailers" || out.Header.Get("X-E2e") != "1" {
			t.Errorf("upstream request headers %v", out.Header)
		}
		if transport.EndpointFromContext(out.Context()) != ep {
			t.Error("endpoint not in the request context")
		}
		res := w.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusCreated || string(body) != "hello" || res.Header.Get("X-Up") != "1" || res.Header.Get("Connection") != "" {
			t.Errorf("response %d %q %v", res.StatusCode, body, res.Header)
		}
		if res.Trailer.Get("X-Sum") != "abc" {
			t.Errorf("trailers %v", res.Trailer)
		}
	})
	for _, tc := range []struct {
		name   string
		err    error
		status int
		body   string
	}{
		{"connect failure", &transport.DialError{Addr: "127.0.0.9:15006", Err: syscall.ECONNREFUSED}, http.StatusBadGateway, "weft: upstream connect error: 127.0.0.9:15006: connection refused"},
		{"other failure", errors.New("stream reset"), http.StatusBadGateway, "weft: upstream request failed: 127.0.0.9:8080: stream reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			proxy.NewForwarder(&fake{err: tc.err}, log).Forward(w, httptest.NewRequest("GET", "/", nil), ep, "c")
			if w.Code != tc.status || strings.TrimSpace(w.Body.String()) != tc.body {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
		})
	}
	t.Run("upstream fails mid-body: the response is aborted", func(t *testing.T) {
		f := &fake{resp: &http.Response{
			StatusCode: 200, Header: http.Header{}, ContentLength: 10,
			Body: io.NopCloser(io.MultiReader(strings.NewReader("12345"), errReader{})),
		}}
		defer func() {
			if r := recover(); !errors.Is(asErr(r), http.ErrAbortHandler) {
				t.Errorf("recovered %v, want http.ErrAbortHandler", r)
			}
		}()
		proxy.NewForwarder(f, log).Forward(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), ep, "c")
	})
}

// ForwardToApp: the inbound's hop to its own app.
func TestForwardToApp(t *testing.T) {
	ep := &lb.Endpoint{Addr: "10.1.0.7:8080"}
	log := slog.New(slog.DiscardHandler)
	closed := fmt.Errorf("h1client: GET 10.1.0.7:8080: %w", io.EOF)
	for _, tc := range []struct {
		name        string
		method      string // default POST
		f           *fake
		status      int
		body        string
		unreachable bool
	}{
		{
			"app refuses the connection", "", &fake{err: &transport.DialError{Addr: "10.1.0.7:8080", Err: syscall.ECONNREFUSED}},
			http.StatusServiceUnavailable, "weft: app unreachable: 10.1.0.7:8080: connection refused", true,
		},
		{
			"app fails after the connection", "", &fake{err: errors.New("reset")},
			http.StatusBadGateway, "weft: upstream request failed: 10.1.0.7:8080: reset", false,
		},
		{
			"app closes the connection before answering a GET", "GET", &fake{err: closed},
			http.StatusServiceUnavailable, "weft: app unreachable: 10.1.0.7:8080 closed the connection before answering", true,
		},
		{
			"app resets the connection before answering a HEAD", "HEAD", &fake{err: fmt.Errorf("write: %w", syscall.ECONNRESET)},
			http.StatusServiceUnavailable, "weft: app unreachable: 10.1.0.7:8080 closed the connection before answering", true,
		},
		{
			"app closes the connection before answering a POST: it may have acted on it", "", &fake{err: closed},
			http.StatusBadGateway, "weft: upstream request failed: 10.1.0.7:8080: h1client: GET 10.1.0.7:8080: EOF", false,
		},
		{"the app cannot claim it", "", &fake{resp: &http.Response{
			StatusCode: http.StatusServiceUnavailable, Header: http.Header{"X-Weft-App-Unreachable": {"1"}},
			Body: io.NopCloser(strings.NewReader("busy")), ContentLength: 4,
		}}, http.StatusServiceUnavailable, "busy", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			method := cmp.Or(tc.method, "POST")
			proxy.NewForwarder(tc.f, log).ForwardToApp(w, httptest.NewRequest(method, "/pay", nil), ep, "inbound|8080||")
			if w.Code != tc.status || strings.TrimSpace(w.Body.String()) != tc.body || (w.Header().Get(mesh.HeaderAppUnreachable) == "1") != tc.unreachable {
				t.Errorf("got %d %q %v, want %d %q unreachable=%v", w.Code, w.Body.String(), w.Header(), tc.status, tc.body, tc.unreachable)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reset") }

func asErr(r any) error {
	err, _ := r.(error)
	return err
}

// TestWriteResponseTrailer: the response announces its trailers: with
// the upstream's own Trailer header when it names them all (gRPC's), with
// their names otherwise; the trailers follow the body.
func TestWriteResponseTrailer(t *testing.T) {
	tests := []struct {
		name     string
		declared []string // the upstream's Trailer header
		trailer  http.Header
		want     string // the Trailer header sent, names in any order
		asIs     bool   // exactly the upstream's
	}{
		{
			name: "declared", declared: []string{"grpc-status, grpc-message"},
			trailer: http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {""}}, want: "grpc-status, grpc-message", asIs: true,
		},
		{
			name: "declared over two values", declared: []string{"Grpc-Status", "Grpc-Message"},
			trailer: http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {""}}, want: "Grpc-Status Grpc-Message", asIs: true,
		},
		{
			name: "one not declared", declared: []string{"grpc-status"},
			trailer: http.Header{"Grpc-Status": {"0"}, "X-Extra": {"1"}}, want: "Grpc-Status, X-Extra",
		},
		{name: "none declared", trailer: http.Header{"Grpc-Status": {"0"}}, want: "Grpc-Status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/grpc"}}
			if tc.declared != nil {
				h["Trailer"] = tc.declared
			}
			// The trailers arrive with the body's end; until then the
			// keys are declared with nil values, as a client's response.
			trailer := http.Header{}
			for k := range tc.trailer {
				trailer[k] = nil
			}
			resp := &http.Response{
				StatusCode: http.StatusOK, Header: h, Trailer: trailer, ContentLength: -1,
				Body: &trailerBody{Reader: strings.NewReader("msg"), trailer: trailer, values: tc.trailer},
			}
			w := httptest.NewRecorder()
			f := proxy.NewForwarder(&fake{}, slog.New(slog.DiscardHandler))
			f.WriteResponse(w, httptest.NewRequest(http.MethodPost, "/", nil), resp, &lb.Endpoint{}, "c")
			res := w.Result()
			got := strings.Join(res.Header.Values("Trailer"), " ")
			if tc.asIs && got != tc.want || !sameNames(got, tc.want) {
				t.Errorf("Trailer header %q, want %q", got, tc.want)
			}
			for k, vv := range tc.trailer {
				if g := res.Trailer.Values(k); fmt.Sprint(g) != fmt.Sprint(vv) {
					t.Errorf("trailer %s = %q, want %q", k, g, vv)
				}
			}
		})
	}
}

// trailerBody fills trailer with values at its io.EOF, as a client's
// response body does.
type trailerBody struct {
	*strings.Reader
	trailer, values http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if errors.Is(err, io.EOF) {
		for k, vv := range b.values {
			b.trailer[k] = vv
		}
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// sameNames: a and b list the same header names (separated by commas or
// spaces, in any order, case-insensitively).
func sameNames(a, b string) bool {
	split := func(s string) []string {
		f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' })
		slices.Sort(f)
		return f
	}
	return slices.Equal(split(a), split(b))
}

// flushCounter counts Flush calls.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (w *flushCounter) Flush() { w.flushes++ }

// chunks reads its parts one per Read; the last comes with io.EOF when
// eofWithLast, else alone after it.
type chunks struct {
	parts       []string
	eofWithLast bool
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts = c.parts[1:]
	if len(c.parts) == 0 && c.eofWithLast {
		return n, io.EOF
	}
	return n, nil
}

func (c *chunks) Close() error { return nil }

// TestWriteResponseFlushes: a body of unknown length is flushed after
// each read but the one that ended it: its bytes go with the end.
func TestWriteResponseFlushes(t *testing.T) {
	tests := []struct {
		name        string
		parts       []string
		eofWithLast bool
		want        int
	}{
		{name: "whole body with its end", parts: []string{"message"}, eofWithLast: true, want: 0},
		{name: "end after the body", parts: []string{"message"}, want: 1},
		{name: "two reads, the end with the second", parts: []string{"one", "two"}, eofWithLast: true, want: 1},
		{name: "two reads, the end after", parts: []string{"one", "two"}, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{
				StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/grpc"}}, ContentLength: -1,
				Body: &chunks{parts: tc.parts, eofWithLast: tc.eofWithLast},
			}
			w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
			f := proxy.NewForwarder(&fake{}, slog.New(slog.DiscardHandler))
			f.WriteResponse(w, httptest.NewRequest(http.MethodPost, "/", nil), resp, &lb.Endpoint{}, "c")
			if w.flushes != tc.want {
				t.Errorf("%d flushes, want %d", w.flushes, tc.want)
			}
			if got, want := w.Body.String(), strings.Join(tc.parts, ""); got != want {
				t.Errorf("body %q, want %q", got, want)
			}
		})
	}
}
