// Package memtrim gives back the executable pages a process mapped only to
// start, and, called again and again (a Trimmer), those it mapped for work
// it no longer does.
//
// A Go process keeps every page of its executable that it ever touched
// mapped, and the kernel maps the cached pages around each one it faults
// in (fault-around), so after start-up almost all of weft-sidecar's text,
// rodata and pclntab is resident (12.8 of 13.3 MB with the bench mesh:
// init functions, flag parsing, the TLS and certificate setup, the first
// configuration's decode, validation and compile) although an idle
// sidecar touches about a third of it. Trim drops the mappings of the
// executable's read-only segments (madvise MADV_DONTNEED): the pages stay
// in the page cache, and what the process touches afterwards is mapped
// again by a minor fault, without I/O. Writable segments (data, bss) are
// never dropped: MADV_DONTNEED would lose what was written to them. Nor is
// a read-only mapping holding a written page (smaps' Anonymous above 0: a
// PIE's relocated RELRO segment, a debugger's breakpoint), for the same
// reason.
//
// What runs after the drop is mapped again, 64 KiB or a page-cache folio
// around each fault, so the caller picks the moment and what follows:
// weft-sidecar trims once its listeners' servers wait for connections
// (their goroutines have started and grown their stacks, whose copy reads
// pclntab), logs nothing after the drop at its default level, and keeps
// the trimming goroutine parked until shutdown (a goroutine's exit reads
// pclntab too). Trim itself allocates per mapping, not per smaps line:
// it runs before the runtime's first collection, so what it allocates
// stays resident.
//
// The same holds under load: what stays mapped is everything the process
// ran since the last drop, so a sidecar dropping only once keeps the
// first requests' handshakes, the probes' and a burst's code, and every
// 64 KiB window a GC cycle's stack scans read (10.3 MiB at 1000
// requests/s, where the request path and a GC cycle need ~8.3). A Trimmer
// drops them again at each call, reading smaps through its own buffer
// (allocating only the open file, so a process idle for minutes without
// a GC cycle does not grow its heap doing it); a mapping that has come to
// hold a written page since is left alone. A drop costs the caller ~0.2
// ms (smaps, madvise) and the process the minor faults that map its
// running code back, ~1 µs per 64 KiB window (BENCHMARKS.md, "Executable
// pages under load"). What a drop does not change: the pages stay in the
// page cache, charged as before to the cgroup that first read them; but a
// page the process touches less often than it drops is unmapped most of
// the time, so under memory pressure the kernel may evict it, and the next
// touch reads it from disk (a major fault) instead of finding it mapped.
//
// Trim does not return the heap (debug.FreeOSMemory): measured on an
// idle sidecar, its forced GC cycle left more anonymous memory and more
// executable pages resident (the stack scan reads pclntab), not less.
//
// Only Linux drops pages; elsewhere Trim does nothing.
package memtrim
