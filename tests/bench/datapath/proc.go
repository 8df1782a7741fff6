package datapath

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; the
// kernel reports it as 100 on every architecture Go supports on Linux.
const clockTicks = 100

// proc is one process the harness started (or, for an nginx worker, found).
// The harness stops only processes it started, by their PID.
type proc struct {
	name string
	pid  int
	cmd  *exec.Cmd // nil for a process found, not started (nginx worker)
	done chan struct{}
	err  error // exit error, valid once done is closed
}

// procs is the set of processes one run started, stopped together.
type procs struct {
	list []*proc
}

// start runs argv in the background with its output in logFile. cpu >= 0
// pins it (and its children) to that CPU with taskset. When ctx ends the
// process gets SIGTERM (SIGKILL 5 s later).
func (ps *procs) start(ctx context.Context, name string, cpu int, env []string, logFile string, argv ...string) (*proc, error) {
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Own process group: a ^C at the terminal reaches the harness, which then
	// stops these by PID in order, instead of every process at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
	return p, nil
}

// exited reports whether p has exited (started processes only).
func (p *proc) exited() bool {
	if p.done == nil {
		return !alive(p.pid)
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopAll sends SIGTERM to every started process, newest first, waits up to
// grace for each, then SIGKILLs what is left.
func (ps *procs) stopAll(grace time.Duration) {
	for i := len(ps.list) - 1; i >= 0; i-- {
		p := ps.list[i]
		if p.cmd == nil || p.exited() {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := statFields(b)
	return len(f) > 0 && f[0] != "Z"
}

// statFields returns the fields of /proc/<pid>/stat after "(comm)", so that
// index 0 is the state (field 3 in proc(5)).
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// cpuTicks is utime+stime of pid (all threads), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	f := statFields(b)
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of %d: short stat", pid)
	}
	// utime and stime are fields 14 and 15 in proc(5): 11 and 12 here.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	return u + s, nil
}

// statusKB reads a "Key:   N kB" line of /proc/<pid>/status (VmHWM, VmRSS).
func statusKB(pid int, key string) (int64, error) {
	v, err := statusField(pid, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s of %d: %w", key, pid, err)
	}
	return n, nil
}

// statusField is the value of one "Key:\tvalue" line of /proc/<pid>/status.
func statusField(pid int, key string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", fmt.Errorf("%s of %d: %w", key, pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s of %d: not found", key, pid)
}

// resetPeakRSS resets VmHWM to the current RSS (proc(5): clear_refs value 5).
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o600); err != nil {
		return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
	}
	return nil
}

// childOf waits for a child process of parent (an nginx worker) to appear.
func childOf(ctx context.Context, parent int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if pid := findChild(parent); pid > 0 {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no child of %d after %s", parent, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("child of %d: %w", parent, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func findChild(parent int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// coreBusy is the busy and total jiffies per CPU from /proc/stat.
type coreBusy map[string][2]int64

func readCoreBusy() (coreBusy, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("read /proc/stat: %w", err)
	}
	out := coreBusy{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var v [8]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		out[f[0]] = [2]int64{busy, busy + v[3] + v[4]}
	}
	return out, nil
}
