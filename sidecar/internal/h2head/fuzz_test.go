package h2head

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2/hpack"
)

// FuzzReaderMatchesFramer: over any bytes a peer sends (frames after the
// preface), the Reader gives what x/net's Framer gives with
// ReadMetaHeaders set: the same frames, fields, truncation and errors.
func FuzzReaderMatchesFramer(f *testing.F) {
	f.Add(writeBlocks(f, []block{{fields: request, split: 7}, {fields: request, end: true}}), uint32(0))
	f.Add(writeBlocks(f, []block{
		{fields: []hpack.HeaderField{hf(":status", "200"), hf("trailer", "a,b,c")}},
		{fields: []hpack.HeaderField{hf("a", "1"), hf("b", "")}, end: true},
	}), uint32(120))
	f.Add(writeBlocks(f, []block{{fields: []hpack.HeaderField{hf("A", "1"), hf("b", "x")}, split: 3}}), uint32(0))
	f.Fuzz(func(t *testing.T, wire []byte, limit uint32) {
		limit %= 1 << 12 // small limits reach truncation; 0: the default
		want := readAll(wire, limit, true)
		got := readAll(wire, limit, false)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Reader differs from the Framer (-framer +reader):\n%s", diff)
		}
	})
}
