package kubeharness

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is one child process in its own process group, logging to a file.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid after done
}

func startProc(name, bin, logPath string, args ...string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kubeharness: %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...) //nolint:noctx // lifetime is owned by Process.Stop, not a context.
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group (so stop reaches every child), and killed if the
	// test binary dies without running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("kubeharness: start %s: %w", name, err)
	}
	p := &Process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { // owned by p: ends when the process does; Stop waits for it.
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Stragglers in the group (none expected) go too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// WaitReady polls url with client until ok says so, the deadline passes or
// the process exits (which fails at once, with its log).
func (p *Process) WaitReady(ctx context.Context, client *http.Client, url string, ok func(code int, body []byte) bool) error {
	start := time.Now()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if ok(resp.StatusCode, buf.Bytes()) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(truncate(buf.String(), 300)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("kubeharness: %s exited (%w) before it was ready; log %s:\n%s", p.name, p.err, p.logPath, p.Tail(30))
		case <-ctx.Done():
			return fmt.Errorf("kubeharness: %s not ready at %s after %s (last: %s); log %s:\n%s",
				p.name, url, time.Since(start).Round(time.Millisecond), last, p.logPath, p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// freePorts returns n distinct ports that were free on ip a moment ago.
// Together with the random loopback address per cluster, collisions with
// concurrent tests are unlikely; a process that still fails to bind makes
// Start fail with its log.
func freePorts(ctx context.Context, ip net.IP, n int) ([]int, error) {
	// Every listener stays open until all n ports are picked: closed one
	// by one, the kernel may hand the same port out twice (etcd's client
	// and peer URLs on one port: "bind: address already in use").
	var lc net.ListenConfig
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			return nil, fmt.Errorf("kubeharness: free port on %s: %w", ip, err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// StartProcess runs bin as a child of the test in its own process group,
// logging to <c.Dir>/<name>.log; t.Cleanup stops it (before the cluster,
// which was started first) and prints its log tail if the test failed.
func (c *Cluster) StartProcess(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	p, err := startProc(name, bin, filepath.Join(c.Dir, name+".log"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("kubeharness: tail of %s:\n%s", p.logPath, p.Tail(40))
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// LogPath is the file the process logs to.
func (p *Process) LogPath() string { return p.logPath }

// RandomLoopback returns a random address in 127.100-250.x.y, for a test
// that needs ports of its own (all of 127.0.0.0/8 routes to lo on Linux).
func RandomLoopback() net.IP {
	return net.IPv4(127, byte(100+rand.IntN(151)), byte(rand.IntN(256)), byte(1+rand.IntN(250)))
}

// FreePort returns a port that was free on ip a moment ago.
func FreePort(ctx context.Context, ip net.IP) (int, error) {
	p, err := freePorts(ctx, ip, 1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// FreePorts returns n distinct ports that were free on ip a moment ago
// (two FreePort calls may return the same port).
func FreePorts(ctx context.Context, ip net.IP, n int) ([]int, error) { return freePorts(ctx, ip, n) }
