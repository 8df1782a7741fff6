package file

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParseWithMemo: parsing through a docMemo (as Source does) gives what
// Parse gives, for the first read, for a re-read where every document is
// remembered, and after edits that move, duplicate and break remembered
// documents (errors keep their own line numbers).
func TestParseWithMemo(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := filepath.Glob("../../translate/testdata/*.yaml")
	if err != nil || len(golden) == 0 {
		t.Fatalf("golden meshes: %v", err)
	}
	firstDoc := string(good[:strings.Index(string(good), "\n---")+1])
	cases := map[string][][]byte{
		// the same file twice: the second read is all memo hits
		"good twice": {good, good},
		// the good file, then a comment before everything (every document moves down)
		"moved": {good, append([]byte("# moved\n\n"), good...)},
		// the first document repeated at the end: a duplicate whose first
		// declaration is a remembered document
		"duplicate": {good, []byte(string(good) + "\n---\n" + firstDoc)},
		// an edit that breaks a document, then the fix
		"broken then fixed": {good, []byte(strings.Replace(string(good), "apiVersion", "apiVersionX", 1)), good},
	}
	for _, g := range golden {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		cases[filepath.Base(g)] = [][]byte{data, data}
	}
	for name, reads := range cases {
		t.Run(name, func(t *testing.T) {
			memo := newDocMemo()
			for i, data := range reads {
				want, werr := Parse("mesh.yaml", data)
				got, gerr := parse("mesh.yaml", data, memo)
				memo.rotate()
				if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
					t.Fatalf("read %d: errors differ:\nParse: %v\nmemo:  %v", i, werr, gerr)
				}
				if !reflect.DeepEqual(want, got) {
					t.Fatalf("read %d: states differ", i)
				}
			}
		})
	}
}
