package file

import (
	"fmt"
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

// TestMemoizedParseAllocations: re-reading a large file decodes nothing
// and allocates little per remembered document (the kinds table was built
// again for each one: ~60 allocations a document).
func TestMemoizedParseAllocations(t *testing.T) {
	var b strings.Builder
	const docs = 500
	for i := range docs {
		fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: w%d, namespace: shop, labels: {app: w}}\nspec: {address: 10.1.%d.%d, serviceAccount: w}\n---\n", i, i/250, i%250+1)
	}
	data := []byte(b.String())
	memo := newDocMemo()
	if _, err := parse("mesh.yaml", data, memo); err != nil {
		t.Fatal(err)
	}
	memo.rotate()
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := parse("mesh.yaml", data, memo); err != nil {
			t.Fatal(err)
		}
		memo.rotate()
	})
	t.Logf("%.1f allocations per document", allocs/docs)
	if perDoc := allocs / docs; perDoc > 30 {
		t.Errorf("a memoized parse allocates %.1f times per document; want at most 30", perDoc)
	}
}
