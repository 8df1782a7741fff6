package memtrim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// testSmaps is a sidecar's smaps, cut down, with the cases Trim must tell apart.
const testSmaps = `00400000-00a02000 r-xp 00000000 fe:00 11535587                           /bin/weft-sidecar
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

func TestReadOnlyMappings(t *testing.T) {
	got, exe, err := readOnlyMappings(strings.NewReader(testSmaps), 0x401234)
	if err != nil {
		t.Fatal(err)
	}
	if exe.dev != "fe:00" || exe.ino != "11535587" {
		t.Errorf("executable %s %s, want fe:00 11535587", exe.dev, exe.ino)
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

// TestAppendFileMappings: the later drops' reading of smaps, for a file
// already known, picks the same mappings as the first (readOnlyMappings),
// whatever the buffer size (a line longer than the buffer is cut), and
// leaves out a mapping that has come to hold a written page since.
func TestAppendFileMappings(t *testing.T) {
	want, _, err := readOnlyMappings(strings.NewReader(testSmaps), 0x401234)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64, 100, smapsBuffer} {
		got, err := appendFileMappings(nil, bufio.NewReaderSize(strings.NewReader(testSmaps), size), []byte("fe:00"), []byte("11535587"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("buffer %d: mappings %x, want %x", size, got, want)
		}
	}
	// The text mapping now holds a written page (a debugger's breakpoint).
	written := strings.Replace(testSmaps, "Anonymous:             0 kB\nVmFlags: rd ex", "Anonymous:             4 kB\nVmFlags: rd ex", 1)
	got, err := appendFileMappings(nil, bufio.NewReaderSize(strings.NewReader(written), smapsBuffer), []byte("fe:00"), []byte("11535587"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want[1:]) {
		t.Errorf("with a written text page: mappings %x, want %x", got, want[1:])
	}
	if _, err := appendFileMappings(nil, bufio.NewReaderSize(strings.NewReader("zz-00 r-xp 00000000 fe:00 7 /x\n"), smapsBuffer), []byte("fe:00"), []byte("7")); err == nil {
		t.Error("a bad address range was accepted")
	}
}

// TestAppendFileMappingsAllocatesNothing: a process that trims every few
// seconds makes no garbage doing it (an idle sidecar runs no GC cycle for
// minutes, so what it allocates stays resident).
func TestAppendFileMappingsAllocatesNothing(t *testing.T) {
	r := strings.NewReader(testSmaps)
	br := bufio.NewReaderSize(r, smapsBuffer)
	dst := make([]mapping, 0, 8)
	dev, ino := []byte("fe:00"), []byte("11535587")
	if n := testing.AllocsPerRun(20, func() {
		r.Reset(testSmaps)
		br.Reset(r)
		var err error
		if dst, err = appendFileMappings(dst[:0], br, dev, ino); err != nil || len(dst) != 3 {
			t.Fatal(len(dst), err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per read of smaps, want 0", n)
	}
}

func TestReadOnlyMappingsBadLine(t *testing.T) {
	if _, _, err := readOnlyMappings(strings.NewReader("zz-00 r-xp 00000000 fe:00 7 /x\n"), 0x10); err == nil {
		t.Fatal("a bad address range was accepted")
	}
	if _, _, err := readOnlyMappings(strings.NewReader("00400000-00a02000 r-xp 00000000 fe:00 7 /x\n"), 0x10); err == nil {
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
	ms, _, err := readOnlyMappings(bytes.NewReader(maps), uint64(reflect.ValueOf(resident).Pointer()))
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

// TestTrimmerDropsAgain: a Trimmer's later drops (smaps read through its
// own buffer) drop what was mapped again since the first: here every page
// of the executable's read-only mappings, read before each drop.
func TestTrimmerDropsAgain(t *testing.T) {
	var tr Trimmer
	first, err := tr.Trim()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mapAll(t)
		before, total := resident(t)
		r, err := tr.Trim()
		if err != nil {
			t.Fatal(err)
		}
		after, _ := resident(t)
		t.Logf("drop %d: resident pages of %d: %d -> %d", i+2, total, before, after)
		if r != first {
			t.Errorf("drop %d: %+v, want %+v as the first", i+2, r, first)
		}
		if after >= before {
			t.Errorf("drop %d: resident pages %d -> %d: nothing dropped", i+2, before, after)
		}
	}
}

// mapAll reads a byte of every page of the executable's read-only
// mappings, so that all of them are mapped.
func mapAll(t *testing.T) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	ms, _, err := readOnlyMappings(bytes.NewReader(maps), uint64(reflect.ValueOf(mapAll).Pointer()))
	if err != nil {
		t.Fatal(err)
	}
	var sum byte
	page := uintptr(os.Getpagesize())
	for _, m := range ms {
		for a := uintptr(m.start); a < uintptr(m.end); a += page {
			sum += *(*byte)(unsafe.Add(unsafe.Pointer(nil), a)) // a page of a read-only mapping of this process
		}
	}
	runtime.KeepAlive(sum)
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
			if _, _, err := readOnlyMappings(strings.NewReader(s), 0x400000); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(smaps(1)), allocs(smaps(25))
	if many > few {
		t.Errorf("allocations per read: %v with 1 field line per mapping, %v with 25: the field lines allocate", few, many)
	}
}

// BenchmarkTrim is what one drop costs the process itself (reading
// smaps, the madvise calls) and what maps this loop's code back, not
// the faults of a sidecar's own code (BENCHMARKS.md has those).
func BenchmarkTrim(b *testing.B) {
	var tr Trimmer
	for b.Loop() {
		if _, err := tr.Trim(); err != nil {
			b.Fatal(err)
		}
	}
}
