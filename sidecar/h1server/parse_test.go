package h1server

import (
	"bufio"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

const benchHead = "GET /1k HTTP/1.1\r\nHost: upstream.bench.svc.cluster.local:8080\r\nUser-Agent: fortio.org/fortio-1.65.0\r\nAccept: */*\r\nX-Weft-Target-Port: 8080\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"

func parse(t testing.TB, s string) (*http.Request, framing, error) {
	t.Helper()
	head, err := readHead(bufio.NewReader(strings.NewReader(s)), http.DefaultMaxHeaderBytes, nil)
	if err != nil {
		return nil, framing{}, err
	}
	r := new(http.Request)
	var f framing
	err = parseHead(head, r, &f, new(scratch), new(headerMem))
	return r, f, err
}

func TestParseHead(t *testing.T) {
	r, f, err := parse(t, "\r\nPOST /a?b=c HTTP/1.1\r\nhost: h:1\r\ncontent-length: 12\r\nX-Multi: 1\r\nx-multi:  2 \r\nExpect: 100-continue\r\nweird-KEY: v\r\n\r\nbody")
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Content-Length": {"12"}, "X-Multi": {"1", "2"}, "Expect": {"100-continue"}, "Weird-Key": {"v"}}
	if !reflect.DeepEqual(r.Header, want) {
		t.Errorf("header %v, want %v", r.Header, want)
	}
	if r.Host != "h:1" || r.URL.Path != "/a" || r.URL.RawQuery != "b=c" || r.ContentLength != 12 || f.contentLength != 12 || !f.expectContinue || f.close {
		t.Errorf("got %+v %+v", r, f)
	}
	_, f, err = parse(t, "PUT / HTTP/1.1\nHost: h\nTransfer-Encoding: Chunked\nTrailer: x-a\n\n")
	if err != nil || !f.chunked || f.contentLength != -1 {
		t.Errorf("chunked: %+v %v", f, err)
	}
	for _, bad := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
		"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h h\r\n\r\n",
		"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n",
		"CONNECT a:1:2 HTTP/1.1\r\n\r\n",
	} {
		if _, _, err := parse(t, bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if _, _, err := parse(t, "GET / HTTP/1.1\r\nHost: h\r\nX: "+strings.Repeat("a", http.DefaultMaxHeaderBytes)+"\r\n\r\n"); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("large head: %v", err)
	}
}

// FuzzParseHead checks the parser against net/http's: no panics, and
// where both accept a head they agree on what it says. The parser is
// stricter on purpose in a few places (obsolete line folding, both
// Transfer-Encoding and Content-Length), so a head only net/http accepts
// is fine.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		benchHead,
		"GET http://payment.shop:8080/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
		"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n",
		"POST /p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n",
		"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",
		"GET /%41?x HTTP/1.1\r\nhost: h\r\npragma: no-cache\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, fr, err := parse(t, s)
		want, werr := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
		if err != nil {
			return
		}
		if fr.contentLength < -1 || r.URL == nil {
			t.Fatalf("accepted with contentLength %d, URL %v", fr.contentLength, r.URL)
		}
		if werr != nil {
			return
		}
		delete(want.Header, "Host")
		delete(want.Header, "Transfer-Encoding")
		if len(want.Header) == 0 {
			want.Header = http.Header{}
		}
		if r.Method != want.Method || r.RequestURI != want.RequestURI || r.Host != want.Host ||
			r.URL.String() != want.URL.String() || r.URL.Path != want.URL.Path || r.URL.RawPath != want.URL.RawPath ||
			r.ContentLength != want.ContentLength || r.Close != want.Close || r.ProtoMinor != want.ProtoMinor ||
			!reflect.DeepEqual(r.Header, want.Header) || !reflect.DeepEqual(r.Trailer, want.Trailer) {
			t.Fatalf("%q:\n got %s %q host %q url %q (%q %q) len %d close %v minor %d\n%v %v\nwant %s %q host %q url %q (%q %q) len %d close %v minor %d\n%v %v",
				s, r.Method, r.RequestURI, r.Host, r.URL, r.URL.Path, r.URL.RawPath, r.ContentLength, r.Close, r.ProtoMinor, r.Header, r.Trailer,
				want.Method, want.RequestURI, want.Host, want.URL, want.URL.Path, want.URL.RawPath, want.ContentLength, want.Close, want.ProtoMinor, want.Header, want.Trailer)
		}
	})
}

// BenchmarkParseHead compares the parser with http.ReadRequest on a
// typical proxied request head.
func BenchmarkParseHead(b *testing.B) {
	sr := strings.NewReader(benchHead)
	br := bufio.NewReaderSize(sr, 4096)
	b.Run("h1server", func(b *testing.B) {
		b.ReportAllocs()
		var r http.Request
		var f framing
		var sc scratch // in the server, part of the exchange's allocation
		for b.Loop() {
			sr.Reset(benchHead)
			br.Reset(sr)
			head, err := readHead(br, http.DefaultMaxHeaderBytes, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := parseHead(head, &r, &f, &sc, new(headerMem)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http-ReadRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(benchHead)
			br.Reset(sr)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}
