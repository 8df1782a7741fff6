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

// mapping is one line of /proc/<pid>/maps that Trim may drop.
type mapping struct {
	start, end uint64
}

// dropExecutable madvises MADV_DONTNEED every read-only mapping of the
// running executable.
func dropExecutable() (Result, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
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

// readOnlyMappings returns the mappings in maps (the format of
// /proc/<pid>/maps) of the file with that device and inode that are
// private and neither writable nor otherwise written: "r-xp" and "r--p".
// A writable one ("rw-p": data, bss) never is, whatever its file.
func readOnlyMappings(maps io.Reader, major, minor uint32, ino uint64) ([]mapping, error) {
	var out []mapping
	dev := fmt.Sprintf("%02x:%02x", major, minor)
	s := bufio.NewScanner(maps)
	for s.Scan() {
		// start-end perms offset dev inode [path]
		f := bytes.Fields(s.Bytes())
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
			return nil, fmt.Errorf("memtrim: bad maps line %q", s.Bytes())
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("memtrim: bad maps line %q", s.Bytes())
		}
		out = append(out, mapping{start: start, end: end})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: reading maps: %w", err)
	}
	return out, nil
}
