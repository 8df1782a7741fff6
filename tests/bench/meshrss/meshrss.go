// Package meshrss measures a real weft-sidecar's memory against the size of
// the mesh (issue 11, harness item 2; `make bench-mem`, cmd/weft-meshrss).
//
// For each case it generates a file registry with xdssim.MeshSpec (Services
// of one port, one WorkloadEntry each, five Services per namespace), makes a
// CA directory and a join token for the measured workload (WorkloadEntry 0,
// whose address is moved to a loopback address so that its listeners bind),
// starts the real weft-control-plane on that registry and one real
// weft-sidecar for the workload, waits until the sidecar reports ready
// (certificate, every xDS type applied, listeners bound), lets it settle,
// and reads its /proc/<pid>/status: VmRSS, RssAnon (heap, stacks: what the
// configuration costs), RssFile (the executable's pages) and VmHWM (the
// peak while the configuration was decoded and compiled). With
// Config.Profile it also saves the sidecar's heap profile.
//
// Two allowlists per mesh size: "reach 5" gives every namespace an egress
// NetworkPolicy that allows only its own namespace (five Services), so the
// control plane sends the sidecar five clusters whatever the mesh size;
// "reach all" has no policy, and the sidecar receives every Service.
//
// Every process it starts is stopped before a case returns; every wait is
// bounded by Config.Settle.
package meshrss

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/tests/bench/xdssim"
)

// ServicesPerNamespace is how many Services share a namespace: the "reach 5"
// allowlist is one namespace.
const ServicesPerNamespace = 5

// Config is one run: every size, with both allowlists.
type Config struct {
	Bin    string        // weft-control-plane and weft-sidecar
	Dir    string        // run directory (registry, CA, logs)
	Sizes  []int         // Services in the mesh
	Settle time.Duration // bound of every wait
	// Idle is how long the sidecar runs, configured, before it is read.
	Idle time.Duration
	// Profile saves the sidecar's heap profile (/debug/pprof/heap?gc=1 on
	// its admin port) as heap.pb.gz in each case's directory, after its
	// /proc status was read (the forced GC does not change the figures;
	// the sidecar runs with GODEBUG=memprofilerate=524288, Go's default,
	// as weft-sidecar's own default is no heap profiling).
	Profile bool
	Log     *slog.Logger
}

// Result is one case.
type Result struct {
	Services  int    // in the mesh
	Reach     string // "5" or "all"
	Reachable int    // Services the sidecar is configured for
	Ready     time.Duration
	RSS       int64 // kB, VmRSS after Idle
	Anon      int64 // kB, RssAnon
	File      int64 // kB, RssFile
	HWM       int64 // kB, VmHWM: peak since start
}

// Run measures every case in cfg.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Minute
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var out []Result
	for _, n := range cfg.Sizes {
		if n < ServicesPerNamespace || n%ServicesPerNamespace != 0 {
			return out, fmt.Errorf("meshrss: %d services: want a multiple of %d", n, ServicesPerNamespace)
		}
		for _, reach := range []int{1, 0} {
			r, err := runCase(ctx, cfg, n, reach)
			if err != nil {
				return out, err
			}
			cfg.Log.Info("measured", "services", r.Services, "reach", r.Reach, "rss_kb", r.RSS, "anon_kb", r.Anon, "file_kb", r.File, "hwm_kb", r.HWM, "ready", r.Ready)
			out = append(out, r)
		}
	}
	return out, nil
}

// runCase measures one mesh size with one allowlist (reach namespaces; 0:
// no policy).
func runCase(ctx context.Context, cfg Config, services, reach int) (Result, error) {
	spec := xdssim.MeshSpec{Services: services, Namespaces: services / ServicesPerNamespace, EndpointsPerService: 1, Reach: reach}
	res := Result{Services: services, Reach: "all", Reachable: services}
	if reach > 0 {
		res.Reach, res.Reachable = strconv.Itoa(reach*ServicesPerNamespace), reach*ServicesPerNamespace
	}
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("%d-reach-%s", services, res.Reach))
	if err := os.RemoveAll(dir); err != nil {
		return res, fmt.Errorf("meshrss: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("meshrss: %w", err)
	}
	ip := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(151), rand.IntN(256), 1+rand.IntN(250))
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := writeMesh(spec, meshFile, ip); err != nil {
		return res, err
	}
	w := spec.Workload(0)
	caDir := filepath.Join(dir, "ca")
	tokenFile := filepath.Join(dir, "token")
	if err := prepareCA(ctx, caDir, tokenFile, w); err != nil {
		return res, err
	}

	cpIP := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(151), rand.IntN(256), 1+rand.IntN(250))
	xds := net.JoinHostPort(cpIP, strconv.Itoa(mesh.PortXDS))
	debug := net.JoinHostPort(cpIP, strconv.Itoa(mesh.PortDebug))
	cp, err := start(ctx, filepath.Join(dir, "control-plane.log"), nil, filepath.Join(cfg.Bin, mesh.BinaryControlPlane),
		"--registry=file", "--file="+meshFile, "--xds-address="+xds, "--debug-address="+debug,
		"--ca-dir="+caDir, "--join-tokens="+filepath.Join(caDir, "join-tokens.json"),
		"--trust-domain="+mesh.DefaultTrustDomain, "--log-level=warn")
	if err != nil {
		return res, err
	}
	defer stop(cp)
	if err := waitOK(ctx, "http://"+debug+"/healthz", cfg.Settle); err != nil {
		return res, fmt.Errorf("meshrss: control plane (%d services): %w (log in %s)", services, err, dir)
	}

	env := []string{"GOMAXPROCS=1"}
	if cfg.Profile {
		// weft-sidecar runs with heap profiling off unless GODEBUG sets
		// memprofilerate; Go's default rate, for the profile (the
		// profiler's own pages then count in the figures).
		env = append(env, "GODEBUG=memprofilerate=524288")
	}
	t0 := time.Now()
	sc, err := start(ctx, filepath.Join(dir, "sidecar.log"), env, filepath.Join(cfg.Bin, mesh.BinarySidecar),
		"-ip", ip, "-namespace", w.Namespace, "-workload", w.Name, "-service-account", w.ServiceAccount,
		"-xds-address", xds, "-ca-bundle", filepath.Join(caDir, ca.FileBundle), "-token-file", tokenFile,
		"-trust-domain", mesh.DefaultTrustDomain, "-log-level", "warn")
	if err != nil {
		return res, err
	}
	defer stop(sc)
	admin := "http://" + net.JoinHostPort(ip, strconv.Itoa(mesh.PortAdmin))
	if err := waitOK(ctx, admin+"/ready", cfg.Settle); err != nil {
		return res, fmt.Errorf("meshrss: sidecar (%d services, reach %s): %w (logs in %s)", services, res.Reach, err, dir)
	}
	res.Ready = time.Since(t0)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(cfg.Idle):
	}
	st, err := status(sc.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.RSS, res.Anon, res.File, res.HWM = st["VmRSS"], st["RssAnon"], st["RssFile"], st["VmHWM"]
	if cfg.Profile {
		if err := save(ctx, admin+"/debug/pprof/heap?gc=1", filepath.Join(dir, "heap.pb.gz")); err != nil {
			return res, err
		}
	}
	return res, nil
}

// save writes what url answers to file.
func save(ctx context.Context, url, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("meshrss: %s: status %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("meshrss: %s: %w", url, err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	return nil
}

// writeMesh writes spec's registry with WorkloadEntry 0 at ip (the
// generator puts every entry on 10.x.y.z).
func writeMesh(spec xdssim.MeshSpec, file, ip string) error {
	var b strings.Builder
	if err := spec.Write(&b, nil); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	const first = "address: 10.0.0.1," // WorkloadEntry 0's address
	s := b.String()
	if strings.Count(s, first) != 1 {
		return errors.New("meshrss: the generated registry does not have WorkloadEntry 0 at 10.0.0.1")
	}
	s = strings.Replace(s, first, "address: "+ip+",", 1)
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	return nil
}

// prepareCA makes the CA directory the control plane signs with and a join
// token for w, as control-plane/launch does for weftctl up.
func prepareCA(ctx context.Context, caDir, tokenFile string, w xdssim.Workload) error {
	td := spiffeid.RequireTrustDomainFromString(mesh.DefaultTrustDomain)
	if _, err := ca.Open(ctx, td, ca.NewDirStore(caDir)); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	jt := ca.NewJoinTokens(nil)
	tok, err := jt.Mint(ca.Identity{Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Workload: w.Name}, 0)
	if err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	if err := jt.WriteFile(filepath.Join(caDir, "join-tokens.json")); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("meshrss: %w", err)
	}
	return nil
}

// proc is a started binary; done is closed once it has exited and been
// waited for (by the goroutine start leaves, which stop ends).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs one of our binaries with its output in logFile.
func start(ctx context.Context, logFile string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("meshrss: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...) //nolint:gosec // G204: our own binaries
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("meshrss: start %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop interrupts p, kills it if it is still running 10 s later, and waits
// for it.
func stop(p *proc) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitOK polls url until it answers 200 or timeout passes.
func waitOK(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("no 200 from %s within %s: %w", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// status reads the kB fields of /proc/<pid>/status.
func status(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("meshrss: %w", err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

// Markdown renders results as a table.
func Markdown(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| Services in the mesh | allowlist reaches | sidecar ready after | VmRSS, MiB | RssAnon (heap, stacks), MiB | RssFile (executable), MiB | VmHWM (peak), MiB |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	mib := func(kb int64) string { return strconv.FormatFloat(float64(kb)/1024, 'f', 1, 64) }
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s |\n", r.Services, r.Reach, r.Ready.Round(100*time.Millisecond), mib(r.RSS), mib(r.Anon), mib(r.File), mib(r.HWM))
	}
}
