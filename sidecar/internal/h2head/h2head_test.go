package h2head

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// block is a header block to write: its fields (encoded as they are, valid
// or not) or raw bytes, split into a HEADERS frame and CONTINUATION frames
// of at most split bytes each (0: one frame).
type block struct {
	fields []hpack.HeaderField
	raw    []byte
	split  int
	end    bool // END_STREAM
}

// writeBlocks encodes blocks on stream 1 (a DATA frame between them) with
// one HPACK encoder, as a peer's connection does.
func writeBlocks(t testing.TB, blocks []block) []byte {
	t.Helper()
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hb)
	for i, b := range blocks {
		hb.Reset()
		for _, f := range b.fields {
			if err := enc.WriteField(f); err != nil {
				t.Fatal(err)
			}
		}
		frag := hb.Bytes()
		if b.raw != nil {
			frag = b.raw
		}
		first := frag
		if b.split > 0 && len(frag) > b.split {
			first = frag[:b.split]
		}
		rest := frag[len(first):]
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: b.end, EndHeaders: len(rest) == 0}); err != nil {
			t.Fatal(err)
		}
		for len(rest) > 0 {
			n := min(b.split, len(rest))
			if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if i < len(blocks)-1 {
			if err := fr.WriteData(1, false, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out.Bytes()
}

// result is what reading one frame gave, comparable across readers.
type result struct {
	Type      string
	Stream    uint32
	Fields    []hpack.HeaderField
	Truncated bool
	Ended     bool
	Err       string
}

func summarize(f http2.Frame, err error) result {
	if err != nil {
		var se http2.StreamError
		if errors.As(err, &se) {
			return result{Err: "stream error " + se.Code.String(), Stream: se.StreamID}
		}
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return result{Err: "connection error " + http2.ErrCode(ce).String()}
		}
		return result{Err: err.Error()}
	}
	r := result{Type: f.Header().Type.String(), Stream: f.Header().StreamID}
	if mh, ok := f.(*http2.MetaHeadersFrame); ok {
		r.Type = "meta"
		r.Fields = append([]hpack.HeaderField(nil), mh.Fields...)
		r.Truncated = mh.Truncated
		r.Ended = mh.StreamEnded()
	}
	return r
}

// readAll reads every frame of wire until an error; xnet uses the Framer's
// own ReadMetaHeaders, otherwise a Reader.
func readAll(wire []byte, limit uint32, xnet bool) []result {
	fr := http2.NewFramer(nil, bytes.NewReader(wire))
	fr.MaxHeaderListSize = limit
	dec := hpack.NewDecoder(4096, nil)
	read := fr.ReadFrame
	if xnet {
		fr.ReadMetaHeaders = dec
	} else {
		read = NewReader(fr, dec).ReadFrame
	}
	var out []result
	for {
		f, err := read()
		r := summarize(f, err)
		if r.Err == "EOF" {
			return out
		}
		out = append(out, r)
		if err != nil && !strings.HasPrefix(r.Err, "stream error") {
			return out
		}
	}
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

var request = []hpack.HeaderField{
	hf(":method", "POST"), hf(":scheme", "http"), hf(":path", "/grpc.health.v1.Health/Check"),
	hf(":authority", "upstream.bench.svc.cluster.local:8080"), hf("content-type", "application/grpc"),
	hf("user-agent", "grpc-go/1.79.3"), hf("te", "trailers"), hf("x-request-id", "0af7651916cd43dd8448eb211c80319c"),
}

// TestReaderMatchesFramer: the Reader gives what x/net's Framer gives with
// ReadMetaHeaders set (fields, truncation, errors), block after block on
// one connection, over valid, malformed and oversized header blocks.
func TestReaderMatchesFramer(t *testing.T) {
	long := strings.Repeat("v", 300)
	tests := []struct {
		name   string
		limit  uint32
		blocks []block
	}{
		{name: "request head", blocks: []block{{fields: request}}},
		{name: "heads across CONTINUATION, twice", blocks: []block{{fields: request, split: 7}, {fields: request, split: 3, end: true}}},
		{name: "response head and trailers", blocks: []block{
			{fields: []hpack.HeaderField{hf(":status", "200"), hf("content-type", "application/grpc"), hf("trailer", "grpc-status, grpc-message")}},
			{fields: []hpack.HeaderField{hf("grpc-status", "0"), hf("grpc-message", "")}, end: true},
		}},
		{name: "invalid value, then a valid head", blocks: []block{{fields: []hpack.HeaderField{hf(":method", "GET"), hf("x", "a\x00b")}}, {fields: request}}},
		{name: "upper-case name", blocks: []block{{fields: []hpack.HeaderField{hf(":method", "GET"), hf("X-Up", "1")}}, {fields: request}}},
		{name: "pseudo after regular", blocks: []block{{fields: []hpack.HeaderField{hf("a", "1"), hf(":method", "GET")}}, {fields: request}}},
		{name: "duplicate pseudo", blocks: []block{{fields: []hpack.HeaderField{hf(":path", "/"), hf(":path", "/x")}}, {fields: request}}},
		{name: "request and response pseudo", blocks: []block{{fields: []hpack.HeaderField{hf(":status", "200"), hf(":method", "GET")}}}},
		{name: "unknown pseudo", blocks: []block{{fields: []hpack.HeaderField{hf(":foo", "1")}}}},
		{name: "over the limit: truncated", limit: 400, blocks: []block{{fields: []hpack.HeaderField{hf(":method", "GET"), hf("a", long), hf("b", long)}}, {fields: request}}},
		{name: "trailer names count apart", limit: 200, blocks: []block{{fields: []hpack.HeaderField{hf(":status", "200"), hf("trailer", "a,b,c,d,e"), hf("x", strings.Repeat("v", 100))}}}},
		{name: "fragment over twice the limit", limit: 100, blocks: []block{{fields: []hpack.HeaderField{hf("a", long)}}}},
		{name: "CONTINUATION once over the limit", limit: 120, blocks: []block{{fields: []hpack.HeaderField{hf("a", strings.Repeat("v", 150)), hf("b", "1")}, split: 160}}},
		{name: "CONTINUATION after an invalid field", blocks: []block{{fields: []hpack.HeaderField{hf("A", "1"), hf("b", long)}, split: 10}}},
		{name: "not HPACK", blocks: []block{{raw: []byte{0xff, 0xff, 0xff, 0xff, 0xff}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := writeBlocks(t, tc.blocks)
			want := readAll(wire, tc.limit, true)
			got := readAll(wire, tc.limit, false)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Reader differs from the Framer (-framer +reader):\n%s", diff)
			}
		})
	}
}

// replay reads the same bytes forever.
type replay struct {
	b   []byte
	off int
}

func (r *replay) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// TestReaderReusesItsFrame: after the first block, a header block costs
// the Framer's HEADERS frame and nothing of the Reader's (no frame, field
// slice or decoding closure per block).
func TestReaderReusesItsFrame(t *testing.T) {
	// Fields of HPACK's static table only, so decoding them allocates no
	// string and the same bytes decode the same way each time.
	// :method GET, :scheme https, :path /, accept-encoding gzip, deflate.
	wire := writeBlocks(t, []block{{raw: []byte{0x82, 0x87, 0x84, 0x90}}})
	fr := http2.NewFramer(nil, &replay{b: wire})
	r := NewReader(fr, hpack.NewDecoder(4096, nil))
	read := func() {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); !ok || len(mh.Fields) != 4 {
			t.Fatalf("read %v", f)
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n > 1 {
		t.Errorf("a header block allocates %v times, want at most 1 (the Framer's HeadersFrame)", n)
	}
}

// TestReaderReusesDataFrames: reading a DATA frame allocates nothing.
func TestReaderReusesDataFrames(t *testing.T) {
	var wire bytes.Buffer
	if err := http2.NewFramer(&wire, nil).WriteData(1, false, []byte("a gRPC message")); err != nil {
		t.Fatal(err)
	}
	r := NewReader(http2.NewFramer(nil, &replay{b: wire.Bytes()}), hpack.NewDecoder(4096, nil))
	read := func() {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if df, ok := f.(*http2.DataFrame); !ok || string(df.Data()) != "a gRPC message" {
			t.Fatalf("read %v", f)
		}
	}
	read()
	if n := testing.AllocsPerRun(100, read); n > 0 {
		t.Errorf("a DATA frame allocates %v times, want 0", n)
	}
}
