package netnsharness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// EnvRequire set to anything makes a non-root run fail instead of skip.
const EnvRequire = "WEFT_REQUIRE_NETNS"

// Tools the harness and the capture step need.
var Tools = []string{"ip", "setpriv", "iptables-restore", "iptables-save"}

// Require skips t unless it can create namespaces (root), and fails it
// when a tool is missing.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("netns: linux only")
	}
	if os.Geteuid() != 0 {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("netns: %s is set but the test does not run as root", EnvRequire)
		}
		t.Skip("netns: needs root (set " + EnvRequire + " to make this a failure)")
	}
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("netns: %s not found: apt-get install -y iptables nftables iproute2 util-linux", tool)
		}
	}
}

// Net is one test's network: the hub and its pods.
type Net struct {
	t      testing.TB
	id     string
	prefix string // of every namespace name
	octet  byte   // o in 10.o.k.0/24
	subnet byte   // k in 10.o.k.0/24
	Hub    *NS

	mu    sync.Mutex
	nss   []*NS
	procs []*Proc
	next  byte
}

// NS is one network namespace.
type NS struct {
	Name string
	IP   netip.Addr
	net  *Net
}

// Option configures New.
type Option func(*Net)

// WithPrefix names every namespace <prefix>-<id>-<suffix> (default
// "weftt"), so that suites running at once can tell theirs apart.
func WithPrefix(p string) Option { return func(n *Net) { n.prefix = p } }

// WithSecondOctet puts the network in 10.<o>.k.0/24 (default 250).
func WithSecondOctet(o byte) Option { return func(n *Net) { n.octet = o } }

// New makes the hub namespace with its bridge; everything is removed when
// t ends.
func New(t testing.TB, opts ...Option) *Net {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	k, _ := rand.Int(rand.Reader, big.NewInt(240))
	n := &Net{t: t, id: hex.EncodeToString(b), prefix: "weftt", octet: 250, subnet: byte(k.Int64() + 10), next: 10}
	for _, o := range opts {
		o(n)
	}
	t.Cleanup(n.cleanup)
	hub := n.addNS("hub")
	hub.IP = n.addr(1)
	n.Hub = hub
	n.must("ip", "-n", hub.Name, "link", "set", "lo", "up")
	n.must("ip", "-n", hub.Name, "link", "add", "br0", "type", "bridge")
	n.must("ip", "-n", hub.Name, "addr", "add", hub.IP.String()+"/24", "dev", "br0")
	n.must("ip", "-n", hub.Name, "link", "set", "br0", "up")
	return n
}

func (n *Net) addr(host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{10, n.octet, n.subnet, host})
}

// Prefix returns the network's prefix, 10.<o>.<k>.0/24.
func (n *Net) Prefix() netip.Prefix { return netip.PrefixFrom(n.addr(0), 24) }

func (n *Net) addNS(suffix string) *NS {
	n.t.Helper()
	ns, err := n.tryAddNS(suffix)
	if err != nil {
		n.t.Fatal(err)
	}
	return ns
}

func (n *Net) tryAddNS(suffix string) (*NS, error) {
	ns := &NS{Name: n.prefix + "-" + n.id + "-" + suffix, net: n}
	n.mu.Lock()
	n.nss = append(n.nss, ns)
	n.mu.Unlock()
	return ns, runErr("ip", "netns", "add", ns.Name)
}

// AddPod makes a pod namespace on the bridge with the next address; hosts
// (name -> address) becomes its /etc/hosts.
func (n *Net) AddPod(name string, hosts map[string]netip.Addr) *NS {
	n.t.Helper()
	ns, err := n.CreatePod(name, hosts)
	if err != nil {
		n.t.Fatal(err)
	}
	return ns
}

// CreatePod is AddPod returning its error, for goroutines other than the
// test's (a namespace made before the error is removed at cleanup).
func (n *Net) CreatePod(name string, hosts map[string]netip.Addr) (*NS, error) {
	n.mu.Lock()
	host := n.next
	if host == 255 {
		n.mu.Unlock()
		return nil, errors.New("netns: no address left in the /24")
	}
	n.next++
	n.mu.Unlock()
	ns, err := n.tryAddNS(name)
	if err != nil {
		return nil, err
	}
	ns.IP = n.addr(host)
	veth := fmt.Sprintf("wv%s%d", n.id[:4], host)
	for _, argv := range [][]string{
		{"ip", "-n", n.Hub.Name, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
		{"ip", "-n", n.Hub.Name, "link", "set", veth, "master", "br0", "up"},
		{"ip", "-n", ns.Name, "link", "set", "lo", "up"},
		{"ip", "-n", ns.Name, "addr", "add", ns.IP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", ns.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", ns.Name, "route", "add", "default", "via", n.Hub.IP.String()},
	} {
		if err := runErr(argv...); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n" + ns.IP.String() + " " + name + "\n")
	for h, a := range hosts {
		fmt.Fprintf(&b, "%s %s\n", a, h)
	}
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil { //nolint:gosec // G306: /etc/hosts is world-readable.
		return nil, fmt.Errorf("netns: %w", err)
	}
	return ns, nil
}

// RemovePod deletes a pod's namespace (its veth goes with it) and its
// /etc/netns directory, before the end of the test. Stop its processes
// first. Its address is not reused.
func (n *Net) RemovePod(ns *NS) error {
	n.mu.Lock()
	n.nss = slices.DeleteFunc(n.nss, func(x *NS) bool { return x == ns })
	n.mu.Unlock()
	var err error
	if out, rerr := run("ip", "netns", "del", ns.Name); rerr != nil && !bytes.Contains(out, []byte("No such file")) {
		err = fmt.Errorf("netns: delete %s: %w: %s", ns.Name, rerr, out)
	}
	return errors.Join(err, os.RemoveAll(filepath.Join("/etc/netns", ns.Name)))
}

func (n *Net) must(argv ...string) {
	n.t.Helper()
	if err := runErr(argv...); err != nil {
		n.t.Fatal(err)
	}
}

func runErr(argv ...string) error {
	if out, err := run(argv...); err != nil {
		return fmt.Errorf("netns: %s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

func run(argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput() //nolint:gosec // G204: fixed tools, test-made arguments.
}

// Run runs argv inside ns and returns its combined output.
func (ns *NS) Run(argv ...string) ([]byte, error) {
	return run(append([]string{"ip", "netns", "exec", ns.Name}, argv...)...)
}

// Proc is a process started in a namespace.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Exited reports whether the process ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit status; valid once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop kills the process group and waits for it.
func (p *Proc) Stop() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(3 * time.Second):
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Start runs argv inside ns (as uid when uid > 0), its output in logDir/name.log.
func (ns *NS) Start(name, logDir string, uid int, argv ...string) *Proc {
	ns.net.t.Helper()
	p, err := ns.Spawn(name, logDir, uid, argv...)
	if err != nil {
		ns.net.t.Fatal(err)
	}
	return p
}

// Spawn is Start returning its error, for goroutines other than the test's.
func (ns *NS) Spawn(name, logDir string, uid int, argv ...string) (*Proc, error) {
	n := ns.net
	full := []string{"ip", "netns", "exec", ns.Name}
	if uid > 0 {
		u := strconv.Itoa(uid)
		full = append(full, "setpriv", "--reuid", u, "--regid", u, "--clear-groups")
	}
	full = append(full, argv...)
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644) //nolint:gosec // G302: test logs.
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	cmd := exec.Command(full[0], full[1:]...) //nolint:gosec,noctx // G204: test-made arguments; stopped by Stop/cleanup.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p, nil
}

// Dial opens a connection from inside ns (the test process acting as an
// app in that pod).
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err := ns.dialLocked(ctx, network, addr)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Listen opens a listening socket inside ns (a server "in" that pod or
// the hub that the test serves itself).
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var l net.Listener
		err := ns.inside(func() error {
			var lerr error
			l, lerr = net.Listen(network, addr) //nolint:noctx // bound to the test; closed by the caller.
			return lerr
		})
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// inside runs fn on the current (locked) thread while it is in ns.
func (ns *NS) inside(fn func() error) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns.Name))
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns: setns %s: %w", ns.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	}
	return ferr
}

// dialLocked runs on a locked thread: setns into ns, dial, setns back. A
// thread that cannot go back stays locked, so the runtime discards it.
func (ns *NS) dialLocked(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.inside(func() error {
		var derr error
		c, derr = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return derr
	})
	return c, err
}

func (n *Net) cleanup() {
	n.mu.Lock()
	procs, nss := n.procs, n.nss
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.Stop)
	}
	wg.Wait()
	for i := len(nss) - 1; i >= 0; i-- {
		if out, err := run("ip", "netns", "del", nss[i].Name); err != nil && !bytes.Contains(out, []byte("No such file")) {
			n.t.Logf("netns: delete %s: %v %s", nss[i].Name, err, out)
		}
		_ = os.RemoveAll(filepath.Join("/etc/netns", nss[i].Name))
	}
}

// TailLog returns the end of a process's log (for failure messages).
func TailLog(path string, max int) string {
	b, err := os.ReadFile(path) //nolint:gosec // G304: test logs.
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
