package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// process is one child process in its own process group. Its stdout and
// stderr go, line by line, to a log file under the run dir and, prefixed with
// the process's name, to the shared output. The goroutine that waits for the
// process is owned by the process: it ends when the process has exited.
type process struct {
	name string
	args []string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when the process has exited
	err     error         // valid after done
	mu      sync.Mutex
	stopped bool // set before we signal it, so its exit is expected
}

// startProcess starts args[0] with args[1:]. logPath (appended to) and out
// (may be nil) receive its output.
func startProcess(name string, args []string, env []string, logPath string, out *syncWriter) (*process, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("launch: %s: empty command", name)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, fmt.Errorf("launch: %s: %w", name, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("launch: %s: open log: %w", name, err)
	}
	var w io.Writer = f
	var pw *prefixWriter
	if out != nil {
		pw = &prefixWriter{prefix: []byte(name + " | "), out: out}
		w = io.MultiWriter(f, pw)
	}
	// The command outlives any one request context: it is stopped through
	// stop/kill, never by a context.
	cmd := exec.Command(args[0], args[1:]...) //nolint:gosec,noctx // G204: the mesh file's command is the point; lifetime is managed by stop/kill.
	cmd.Env = env
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the launcher dies without stopping us, so do we.
		Pdeathsig: syscall.SIGKILL,
	}
	// Bound the wait for the output copy once the process has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("launch: %s: start %s: %w", name, args[0], err)
	}
	p := &process{name: name, args: args, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if pw != nil {
			pw.flush()
		}
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id (and process group id).
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// expected reports whether the launcher asked the process to stop.
func (p *process) expected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

func (p *process) signalGroup(sig syscall.Signal) error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	err := syscall.Kill(-p.pid(), sig)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("launch: %s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// stop sends SIGTERM to the process group, waits up to timeout (or until ctx
// ends), then sends SIGKILL and waits for the exit.
func (p *process) stop(ctx context.Context, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.signalGroup(syscall.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	return p.kill()
}

// kill sends SIGKILL to the process group and waits for the exit.
func (p *process) kill() error {
	if p.exited() {
		return nil
	}
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// syncWriter serialises whole writes to out.
type syncWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(b)
}

// prefixWriter writes each complete line with a prefix; a partial line waits
// for its end (or for flush).
type prefixWriter struct {
	prefix []byte
	out    *syncWriter
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(w.prefix)+i+1)
		line = append(line, w.prefix...)
		line = append(line, w.buf[:i+1]...)
		if _, err := w.out.Write(line); err != nil {
			return len(b), fmt.Errorf("launch: write log: %w", err)
		}
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *prefixWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		line := append(append(append([]byte{}, w.prefix...), w.buf...), '\n')
		_, _ = w.out.Write(line)
		w.buf = nil
	}
}
