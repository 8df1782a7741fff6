package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
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
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	ms, err := readOnlyMappings(f, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
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

// readOnlyMappings returns the mappings in smaps (the format of
// /proc/<pid>/smaps: a maps line, then "Key: value" lines) of the file
// with that device and inode that are private, not writable ("r-xp" and
// "r--p") and hold no private copy of a page ("Anonymous: 0 kB").
//
// A writable mapping ("rw-p": data, bss) never qualifies, whatever its
// file. Neither does a read-only one that was written before it was made
// read-only (a PIE's or a dynamically linked binary's relocated RELRO
// segment, mprotected after the loader wrote it; a debugger's
// breakpoint): its written pages are anonymous copies, and
// MADV_DONTNEED would replace them with the file's unwritten bytes.
func readOnlyMappings(smaps io.Reader, major, minor uint32, ino uint64) ([]mapping, error) {
	var (
		out       []mapping
		cur       mapping
		candidate bool
	)
	flush := func() {
		if candidate {
			out = append(out, cur)
		}
		candidate = false
	}
	dev := fmt.Sprintf("%02x:%02x", major, minor)
	s := bufio.NewScanner(smaps)
	for s.Scan() {
		f := bytes.Fields(s.Bytes())
		if len(f) == 0 {
			continue
		}
		if key, ok := bytes.CutSuffix(f[0], []byte(":")); ok {
			// A field of the mapping above; only Anonymous matters.
			if candidate && string(key) == "Anonymous" && (len(f) < 2 || string(f[1]) != "0") {
				candidate = false
			}
			continue
		}
		// start-end perms offset dev inode [path]
		flush()
		if len(f) < 5 {
			continue
		}
		perms := string(f[1])
		if perms != "r-xp" && perms != "r--p" {
			continue
		}
		if string(f[3]) != dev {
			continue
		}
		if n, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || n != ino {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("memtrim: bad smaps line %q", s.Bytes())
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("memtrim: bad smaps line %q", s.Bytes())
		}
		cur, candidate = mapping{start: start, end: end}, true
	}
	flush()
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	return out, nil
}
