package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"

	"golang.org/x/sys/unix"
)

// mapping is one mapping of /proc/<pid>/smaps that Trim may drop.
type mapping struct {
	start, end uint64
}

// dropExecutable madvises MADV_DONTNEED every read-only mapping of the
// running executable that holds no private copy of a page.
func dropExecutable() (Result, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	// The executable is the file mapped where this function's code is:
	// its device and inode as smaps names them (stat of /proc/self/exe
	// can name another device, e.g. overlayfs on older kernels).
	ms, err := readOnlyMappings(f, uint64(reflect.ValueOf(dropExecutable).Pointer()))
	f.Close()
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, m := range ms {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		r.Mappings++
		r.Unmapped += m.end - m.start
	}
	return r, nil
}

// entry is one mapping of smaps as readOnlyMappings reads it.
type entry struct {
	mapping
	perms, dev, ino string
	written         bool // Anonymous above 0
}

// readOnlyMappings returns the mappings in smaps (the format of
// /proc/<pid>/smaps: a maps line, then "Key: value" lines) of the file
// mapped at code (an address of the executable's text) that are private,
// not writable ("r-xp" and "r--p") and hold no private copy of a page
// ("Anonymous: 0 kB").
//
// A writable mapping ("rw-p": data, bss) never qualifies. Neither does a
// read-only one that was written before it was made read-only (a PIE's
// or a dynamically linked binary's relocated RELRO segment, mprotected
// after the loader wrote it; a debugger's breakpoint): its written pages
// are anonymous copies, and MADV_DONTNEED would replace them with the
// file's unwritten bytes.
func readOnlyMappings(smaps io.Reader, code uint64) ([]mapping, error) {
	// The lines are cut into fields in place: Trim runs before the
	// runtime's first collection, so whatever it allocates stays resident
	// for a while (a slice of fields per line was ~70 KB of the heap).
	var all []entry
	s := bufio.NewScanner(smaps)
	for s.Scan() {
		line := s.Bytes()
		f0, rest := field(line)
		if len(f0) == 0 {
			continue
		}
		if key, ok := bytes.CutSuffix(f0, []byte(":")); ok {
			// A field of the mapping above; only Anonymous matters.
			if v, _ := field(rest); len(all) > 0 && string(key) == "Anonymous" && string(v) != "0" {
				all[len(all)-1].written = true
			}
			continue
		}
		// start-end perms offset dev inode [path]
		perms, rest := field(rest)
		_, rest = field(rest) // offset
		dev, rest := field(rest)
		ino, _ := field(rest)
		if len(ino) == 0 {
			return nil, fmt.Errorf("memtrim: bad smaps line %q", line)
		}
		lo, hi, ok := bytes.Cut(f0, []byte("-"))
		if !ok {
			return nil, fmt.Errorf("memtrim: bad smaps line %q", line)
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("memtrim: bad smaps line %q", line)
		}
		all = append(all, entry{mapping: mapping{start, end}, perms: string(perms), dev: string(dev), ino: string(ino)})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	var exe *entry
	for i := range all {
		if all[i].start <= code && code < all[i].end {
			exe = &all[i]
			break
		}
	}
	if exe == nil || exe.ino == "0" {
		return nil, fmt.Errorf("memtrim: no file mapping holds the code at %#x", code)
	}
	var out []mapping
	for _, e := range all {
		if e.dev == exe.dev && e.ino == exe.ino && (e.perms == "r-xp" || e.perms == "r--p") && !e.written {
			out = append(out, e.mapping)
		}
	}
	return out, nil
}

// field returns the first space-separated field of b and what follows it,
// without allocating.
func field(b []byte) (f, rest []byte) {
	b = bytes.TrimLeft(b, " \t")
	i := bytes.IndexAny(b, " \t")
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i:]
}
