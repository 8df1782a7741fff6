// Package rawtcp makes the reads and writes of the sidecar's data-path TCP
// connections raw system calls, so that serving a request does not wake the
// Go runtime's monitor thread (sysmon).
//
// Why (issue 11, the latency tail at 1000 requests/s): with GOMAXPROCS=1
// the one P is idle between requests, and sysmon then sleeps on a note
// until the next timer. Every system call a goroutine enters through
// syscall.Syscall (entersyscall) wakes it when it sleeps there, and after
// such a wake sysmon polls every 20 µs until the P is idle again. So each
// request cost each sidecar a futex wake, a futex wait, one or two 20 µs
// nanosleeps and the lock traffic between the two threads, all on the CPU
// the request runs on, and sysmon's retakes moved the P between threads.
// Measured at 1000 requests/s (BENCHMARKS.md, "Raw socket I/O"): 0.8-2.0
// futex calls, 0.6-2.1 nanosleeps and 1.4-3.4 context switches per request
// per sidecar more than with raw calls; nginx's worker makes no futex or
// nanosleep call.
//
// A socket of the net package is non-blocking: read and write return
// EAGAIN instead of blocking, and the goroutine then waits in the runtime's
// netpoller. Such a call cannot block the thread, which is what
// entersyscall prepares for, so Conn makes it with syscall.RawSyscall
// inside syscall.RawConn's Read and Write: the net package's locking,
// deadlines, Close and netpoller waits are unchanged; only the read(2) and
// write(2) themselves skip entersyscall/exitsyscall. The runtime polls the
// network (epoll_pwait) with raw calls too. Everything else about the
// connection (addresses, deadlines, CloseWrite, SetLinger, SyscallConn for
// SO_ORIGINAL_DST) is the embedded *net.TCPConn's. So are ReadFrom and
// WriteTo (io.Copy's fast paths): they go through the net package's own
// calls, which wake sysmon, and the net package splices only between its
// own connection types, so a copy whose other side is a *Conn is a
// user-space copy. The data path writes through Write and reads through
// Read (h1client, h1server, h2client, h2server, proxy); a copy loop added
// there should do the same.
//
// Errors read like the net package's: a failed read or write is a
// *net.OpError (Op "read"/"write") around an *os.SyscallError; the end of
// the stream is io.EOF; a deadline or a closed connection is the net
// package's own error from RawConn (Op "raw-read"/"raw-write"), so
// errors.Is(err, os.ErrDeadlineExceeded) and net.ErrClosed hold as before.
//
// Under the race detector the calls go through syscall.Read and
// syscall.Write, which tell the detector about the memory they touch and
// about the ordering I/O implies; the logic around them is the same.
//
// Wrap and Listener are what the sidecar uses: the data-path listeners'
// accepted connections and the transport's dialed ones are wrapped, unless
// weft-sidecar runs with --raw-socket-io=false (sidecar.Config.NetSocketIO).
// A connection that is not a *net.TCPConn is returned as it is.
package rawtcp
