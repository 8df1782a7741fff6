package memtrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapping is one mapping of /proc/<pid>/smaps that Trim may drop.
type mapping struct {
	start, end uint64
}

// trimmer is Trimmer's state on Linux.
type trimmer struct {
	// dev and ino name the executable as smaps does (set by the first drop).
	dev, ino []byte
	br       *bufio.Reader
	ms       []mapping
}

// drop madvises MADV_DONTNEED every read-only mapping of the running
// executable that holds no private copy of a page.
func (t *trimmer) drop() (Result, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	if t.dev == nil {
		// The executable is the file mapped where this function's code
		// is: its device and inode as smaps names them (stat of
		// /proc/self/exe can name another device, e.g. overlayfs on
		// older kernels).
		var exe entry
		t.ms, exe, err = readOnlyMappings(f, uint64(reflect.ValueOf((*trimmer).drop).Pointer()))
		if err == nil {
			t.dev, t.ino = []byte(exe.dev), []byte(exe.ino)
		}
	} else {
		// The buffer comes with the second drop: a process that drops
		// once (at start, before its first collection) keeps nothing.
		if t.br == nil {
			t.br = bufio.NewReaderSize(f, smapsBuffer)
		} else {
			t.br.Reset(f)
		}
		t.ms, err = appendFileMappings(t.ms[:0], t.br, t.dev, t.ino)
		t.br.Reset(nil)
	}
	f.Close()
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, m := range t.ms {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		r.Mappings++
		r.Unmapped += m.end - m.start
	}
	return r, nil
}

// smapsBuffer holds the longest smaps line (a maps line with a path, or a
// field line; a longer path is cut, and only its first fields are read).
const smapsBuffer = 4096

// appendFileMappings appends to dst the mappings in smaps (read through
// br) of the file dev:ino that are private, not writable and hold no
// private copy of a page (readOnlyMappings' rules for a file already
// known). It allocates nothing but what dst grows by.
func appendFileMappings(dst []mapping, br *bufio.Reader, dev, ino []byte) ([]mapping, error) {
	keep := false // the last maps line is one of the file's candidates
	for {
		line, err := br.ReadSlice('\n')
		f0, rest := field(line)
		switch key, isField := bytes.CutSuffix(f0, []byte(":")); {
		case len(f0) == 0:
		case isField:
			// A field of the mapping above; only Anonymous matters.
			if v, _ := field(rest); keep && string(key) == "Anonymous" && string(v) != "0" {
				dst, keep = dst[:len(dst)-1], false
			}
		default:
			// start-end perms offset dev inode [path]
			perms, rest := field(rest)
			_, rest = field(rest) // offset
			d, rest := field(rest)
			i, _ := field(rest)
			keep = false
			if bytes.Equal(d, dev) && bytes.Equal(i, ino) && (string(perms) == "r-xp" || string(perms) == "r--p") {
				start, end, ok := parseRange(f0)
				if !ok {
					return dst, fmt.Errorf("memtrim: bad smaps line %q", line)
				}
				dst, keep = append(dst, mapping{start, end}), true
			}
		}
		// A line longer than the buffer (a long path): its first fields
		// were read, the rest is skipped.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("memtrim: reading smaps: %w", err)
		}
	}
}

// parseRange parses "start-end" (hexadecimal) without allocating.
func parseRange(b []byte) (start, end uint64, ok bool) {
	lo, hi, ok := bytes.Cut(b, []byte("-"))
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseUint(unsafeString(lo), 16, 64)
	end, err2 := strconv.ParseUint(unsafeString(hi), 16, 64)
	return start, end, err1 == nil && err2 == nil && end > start
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
func readOnlyMappings(smaps io.Reader, code uint64) ([]mapping, entry, error) {
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
		start, end, ok := parseRange(f0)
		if len(ino) == 0 || !ok {
			return nil, entry{}, fmt.Errorf("memtrim: bad smaps line %q", line)
		}
		all = append(all, entry{mapping: mapping{start, end}, perms: string(perms), dev: string(dev), ino: string(ino)})
	}
	if err := s.Err(); err != nil {
		return nil, entry{}, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	var exe *entry
	for i := range all {
		if all[i].start <= code && code < all[i].end {
			exe = &all[i]
			break
		}
	}
	if exe == nil || exe.ino == "0" {
		return nil, entry{}, fmt.Errorf("memtrim: no file mapping holds the code at %#x", code)
	}
	var out []mapping
	for _, e := range all {
		if e.dev == exe.dev && e.ino == exe.ino && (e.perms == "r-xp" || e.perms == "r--p") && !e.written {
			out = append(out, e.mapping)
		}
	}
	return out, *exe, nil
}

// unsafeString is b as a string, without a copy, for a parse that does
// not keep it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

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
