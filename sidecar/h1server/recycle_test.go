package h1server

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// recycler is a Recycler that answers with the request's X-Id and the
// names of its header fields, keeps the request it was given, and gives
// it back when its path is /give.
type recycler struct {
	mu   sync.Mutex
	reqs []*http.Request
	hdrs []uintptr // the header maps' identities
}

func (h *recycler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.ServeRecycle(w, r) }

func (h *recycler) ServeRecycle(w http.ResponseWriter, r *http.Request) bool {
	h.mu.Lock()
	h.reqs = append(h.reqs, r)
	h.hdrs = append(h.hdrs, reflect.ValueOf(r.Header).Pointer())
	h.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	w.Header().Set("X-Names", strings.Join(sorted(names), ","))
	_, _ = io.WriteString(w, r.Header.Get("X-Id")+" "+r.URL.Path+" "+string(b))
	return strings.HasPrefix(r.URL.Path, "/give")
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// TestRecycler: a request the handler gave back (ServeRecycle true) is
// the memory of the connection's next request: the same *http.Request
// and header map, holding only that request's fields; one it kept, or one
// with a body, is never reused.
func TestRecycler(t *testing.T) {
	h := new(recycler)
	addr, _ := start(t, h)
	c, br := raw(t, addr, "GET /give/1 HTTP/1.1\r\nHost: x\r\nX-Id: 1\r\nX-First: a\r\nX-First: b\r\n\r\n")
	steps := []struct {
		req, body, names string
	}{
		{"", "1 /give/1 ", "X-First,X-Id"},
		// Given back: reused, with none of the first request's fields.
		{"GET /keep/2 HTTP/1.1\r\nHost: x\r\nX-Id: 2\r\n\r\n", "2 /keep/2 ", "X-Id"},
		// Kept: not reused.
		{"GET /give/3 HTTP/1.1\r\nHost: x\r\nX-Id: 3\r\nX-Third: c\r\n\r\n", "3 /give/3 ", "X-Id,X-Third"},
		// Given back, but it has a body: not reused.
		{"POST /give/4 HTTP/1.1\r\nHost: x\r\nX-Id: 4\r\nContent-Length: 2\r\n\r\nhi", "4 /give/4 hi", "Content-Length,X-Id"},
		{"GET /give/5 HTTP/1.1\r\nHost: x\r\nX-Id: 5\r\n\r\n", "5 /give/5 ", "X-Id"},
		{"GET /give/6 HTTP/1.1\r\nHost: x\r\nX-Id: 6\r\n\r\n", "6 /give/6 ", "X-Id"},
	}
	for i, st := range steps {
		if st.req != "" {
			if _, err := io.WriteString(c, st.req); err != nil {
				t.Fatal(err)
			}
		}
		a, body := readResp(t, br, "GET")
		if body != st.body || a.Header.Get("X-Names") != st.names {
			t.Errorf("request %d: body %q, fields %q; want %q, %q", i+1, body, a.Header.Get("X-Names"), st.body, st.names)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	same := func(i, j int) bool { return h.reqs[i] == h.reqs[j] && h.hdrs[i] == h.hdrs[j] }
	for _, tc := range []struct {
		i, j int
		want bool
		why  string
	}{
		{0, 1, true, "the second request reuses the first, given back"},
		{1, 2, false, "the third request reuses the second, which was kept"},
		{3, 4, false, "the fifth request reuses the fourth, which had a body"},
		{4, 5, true, "the sixth request reuses the fifth, given back"},
	} {
		if got := same(tc.i, tc.j); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.why, got, tc.want)
		}
	}
	// What the handler kept of a request it did not give back is intact.
	if kept := h.reqs[1]; kept == h.reqs[2] || kept.URL.Path != "/keep/2" || kept.Header.Get("X-Id") != "2" {
		t.Errorf("kept request changed: %q %v", kept.URL.Path, kept.Header)
	}
}
