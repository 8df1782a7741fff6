package memtrim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	const smaps = `00400000-00a02000 r-xp 00000000 fe:00 11535587                           /bin/weft-sidecar
Size:               6152 kB
Rss:                5948 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00a02000-01100000 r--p 00602000 fe:00 11535587                           /bin/weft-sidecar
Rss:                2180 kB
Anonymous:             0 kB
01100000-01174000 rw-p 00d00000 fe:00 11535587                           /bin/weft-sidecar
Anonymous:            40 kB
01174000-031bc000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
7f17e680f000-7f17e6811000 r-xp 00000000 00:00 0                          [vdso]
7f0000000000-7f0000001000 r--p 00000000 fe:00 42                         /etc/other
7f0000002000-7f0000003000 r--p 00000000 fe:01 11535587                   /other/device
7f0000004000-7f0000005000 r--s 00000000 fe:00 11535587                   /bin/weft-sidecar
7f0000006000-7f0000007000 rwxp 00000000 fe:00 11535587                   /bin/weft-sidecar (deleted)
7f0000008000-7f0000009000 r--p 00d74000 fe:00 11535587                   /bin/weft-sidecar
Rss:                   4 kB
Anonymous:             4 kB
VmFlags: rd mr mw me ac
7f000000a000-7f000000b000 r-xp 00d75000 fe:00 11535587                   /bin/weft-sidecar
`
	got, err := readOnlyMappings(strings.NewReader(smaps), 0x401234)
	if err != nil {
		t.Fatal(err)
	}
	// Not the relocated (written, then read-only) page at 7f0000008000:
	// dropping it would bring back the file's unrelocated bytes. The last
	// mapping, with no fields at all, is still read.
	want := []mapping{{0x400000, 0xa02000}, {0xa02000, 0x1100000}, {0x7f000000a000, 0x7f000000b000}}
	if len(got) != len(want) {
		t.Fatalf("mappings %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: %x, want %x", i, got[i], want[i])
		}
	}
}

func TestReadOnlyMappingsBadLine(t *testing.T) {
	if _, err := readOnlyMappings(strings.NewReader("zz-00 r-xp 00000000 fe:00 7 /x\n"), 0x10); err == nil {
		t.Fatal("a bad address range was accepted")
	}
	if _, err := readOnlyMappings(strings.NewReader("00400000-00a02000 r-xp 00000000 fe:00 7 /x\n"), 0x10); err == nil {
		t.Fatal("no mapping holds the code, and no error")
	}
}

// resident counts the pages of the executable's read-only mappings that
// are mapped into the process (/proc/self/pagemap's present bit).
func resident(t *testing.T) (pages, total int) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := readOnlyMappings(bytes.NewReader(maps), uint64(reflect.ValueOf(resident).Pointer()))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	page := uint64(os.Getpagesize())
	for _, m := range ms {
		buf := make([]byte, (m.end-m.start)/page*8)
		if _, err := pm.ReadAt(buf, int64(m.start/page*8)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(buf); i += 8 {
			total++
			if binary.LittleEndian.Uint64(buf[i:])&(1<<63) != 0 {
				pages++
			}
		}
	}
	return pages, total
}

// TestTrimDropsExecutablePages trims the test binary itself: pages of its
// read-only segments stop being mapped, and the program keeps running
// from the page cache. What the test runs again is mapped back at once,
// a whole page-cache folio per fault (64 KiB and more), so only "fewer"
// is certain.
func TestTrimDropsExecutablePages(t *testing.T) {
	before, total := resident(t)
	r, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after, _ := resident(t)
	t.Logf("dropped %d mappings, %d bytes; resident pages of %d: %d -> %d", r.Mappings, r.Unmapped, total, before, after)
	if r.Mappings < 2 {
		t.Errorf("dropped %d mappings, want the text and rodata ones", r.Mappings)
	}
	if after >= before {
		t.Errorf("resident pages %d -> %d: the executable's pages were not dropped", before, after)
	}
	// The code and data still work: the same result again.
	r2, err := Trim()
	if err != nil || r2 != r {
		t.Errorf("second Trim: %+v, %v; want %+v", r2, err, r)
	}
}

// TestReadOnlyMappingsAllocatesPerMapping: the smaps of a running sidecar
// have ~25 field lines per mapping, and Trim runs before the first
// collection, so what it allocates stays resident; the field lines cost
// nothing (a slice of fields per line was ~70 KB).
func TestReadOnlyMappingsAllocatesPerMapping(t *testing.T) {
	smaps := func(fieldLines int) string {
		var b strings.Builder
		for i := range 30 {
			start := 0x400000 + uint64(i)*0x10000
			fmt.Fprintf(&b, "%x-%x r--p 00000000 fe:00 11535587                           /bin/weft-sidecar\n", start, start+0x10000)
			for j := range fieldLines {
				fmt.Fprintf(&b, "Field%d:             %d kB\n", j, j)
			}
			b.WriteString("Anonymous:             0 kB\n")
		}
		return b.String()
	}
	allocs := func(s string) float64 {
		return testing.AllocsPerRun(20, func() {
			if _, err := readOnlyMappings(strings.NewReader(s), 0x400000); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(smaps(1)), allocs(smaps(25))
	if many > few {
		t.Errorf("allocations per read: %v with 1 field line per mapping, %v with 25: the field lines allocate", few, many)
	}
}
