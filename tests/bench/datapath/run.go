package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// watched is one role on a path whose CPU and memory are sampled: the CPU of
// every PID in cpuPIDs is summed (an nginx master and its worker), the peak
// RSS is rssPID's.
type watched struct {
	role    string // "client proxy", "server proxy", "control plane", "upstream"
	proxy   bool   // counts as a proxy in the cost tables
	cpuPIDs []int
	rssPID  int
}

// benchPath is one way from the load generator to the upstream.
type benchPath struct {
	id      string
	desc    string
	hop     string // what the hop between the proxies is, as observed
	hopTLS  bool   // the hop is TLS
	target  func(size string) target
	watched []watched
}

// sample is one measured load run.
type sample struct {
	round int
	size  string
	path  string
	qps   int // 0 for a saturation run
	lat   latencyResult
	sat   saturationResult
	cpu   map[string]float64 // role -> CPU seconds during the run
	rss   map[string]int64   // role -> peak RSS during the run, kB
	busy  map[string]float64 // cpu0, cpu1 -> busy % during the run
}

func (s sample) requests() int64 {
	if s.qps == 0 {
		return s.sat.Count
	}
	return s.lat.Requests()
}

// runState is everything one Run started; stop undoes it.
type runState struct {
	cfg     Config
	out     io.Writer
	procs   procs
	weft    *weftPair
	paths   []*benchPath
	skipped []string // "W: ..." lines
	idleRSS map[string]int64
	samples []sample
	env     []string
	started time.Time

	loadStart, loadEnd string // /proc/loadavg, for the record
}

// Run measures the configured paths and writes the report to cfg.OutFile and
// to out. Every process it starts is stopped before it returns.
func Run(ctx context.Context, cfg Config, out io.Writer) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, d := range []*string{&cfg.BinDir, &cfg.RunDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
		*d = abs
	}
	st := &runState{cfg: cfg, out: out, idleRSS: map[string]int64{}, started: time.Now()}
	defer func() {
		st.logf("stopping every process the benchmark started")
		if st.weft != nil {
			err = errors.Join(err, st.weft.stop(context.WithoutCancel(ctx)))
		}
		st.procs.stopAll(5 * time.Second)
	}()
	for _, d := range []string{"logs", "raw"} {
		if err := os.MkdirAll(filepath.Join(cfg.RunDir, d), 0o750); err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
	}
	if err := st.preflight(ctx); err != nil {
		return err
	}
	st.loadStart = loadAverage()
	st.env = environment(ctx, cfg)
	for _, l := range st.env {
		st.logf("%s", strings.ReplaceAll(l, "**", ""))
	}
	if err := st.startAll(ctx); err != nil {
		return err
	}
	st.logProcesses()
	if err := st.sanity(ctx); err != nil {
		return err
	}
	if err := st.warmup(ctx); err != nil {
		return err
	}
	if err := st.rounds(ctx); err != nil {
		return err
	}
	st.loadEnd = loadAverage()
	rep := buildReport(st)
	for _, l := range rep.crossCheck() {
		st.logf("%s", l)
	}
	md := rep.markdown()
	fmt.Fprintln(out)
	fmt.Fprint(out, md)
	raw := filepath.Join(cfg.RunDir, "results-"+st.started.UTC().Format("20060102T150405Z")+".md")
	if err := os.WriteFile(raw, []byte(md), 0o600); err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	if cfg.OutFile != "" {
		if err := spliceInto(cfg.OutFile, md); err != nil {
			return err
		}
		st.logf("results written to %s (and %s)", cfg.OutFile, raw)
	}
	return nil
}

func (st *runState) logf(format string, args ...any) {
	fmt.Fprintf(st.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (st *runState) has(path string) bool {
	for _, p := range st.cfg.Paths {
		if p == path {
			return true
		}
	}
	return false
}

func (st *runState) skip(path, why string) {
	line := fmt.Sprintf("SKIPPED path %s (%s): %s", path, pathDescriptions[path], why)
	st.skipped = append(st.skipped, line)
	st.logf("%s", line)
	var keep []string
	for _, p := range st.cfg.Paths {
		if p != path {
			keep = append(keep, p)
		}
	}
	st.cfg.Paths = keep
}

func (st *runState) preflight(ctx context.Context) error {
	for _, tool := range []string{st.cfg.Fortio, st.cfg.Wrk, "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("datapath: %s not found (make bench-deps installs fortio and wrk): %w", tool, err)
		}
	}
	if _, err := os.Stat(filepath.Join(st.cfg.BinDir, "bench-upstream")); err != nil {
		return fmt.Errorf("datapath: bench-upstream not built in %s (make build): %w", st.cfg.BinDir, err)
	}
	if st.has("B") {
		if _, err := exec.LookPath("nginx"); err != nil {
			st.skip("B", "nginx not installed (make bench-deps installs nginx-light)")
		}
	}
	if st.has("W") {
		if missing := weftBinariesMissing(st.cfg.BinDir); len(missing) > 0 {
			st.skip("W", fmt.Sprintf("%s not built in %s yet", strings.Join(missing, ", "), displayPath(st.cfg.BinDir)))
		}
	}
	if busy := addressesInUse(ctx, st.cfg.Paths); len(busy) > 0 {
		return fmt.Errorf("datapath: addresses already in use (another benchmark running?): %s", strings.Join(busy, ", "))
	}
	if runtime.NumCPU() < 2 && st.cfg.LoadCPU >= 0 {
		st.logf("only %d CPU: pinning disabled", runtime.NumCPU())
		st.cfg.LoadCPU, st.cfg.ServerCPU = -1, -1
	}
	return nil
}

func (st *runState) logFile(name string) string {
	return filepath.Join(st.cfg.RunDir, "logs", name+".log")
}

func (st *runState) startAll(ctx context.Context) error {
	cpu := st.cfg.ServerCPU
	st.logf("starting upstream on %s (CPU %d)", upstreamAddr(), cpu)
	up, err := st.procs.start(ctx, "upstream", cpu, []string{"GOMAXPROCS=1"}, st.logFile("upstream"),
		filepath.Join(st.cfg.BinDir, "bench-upstream"), "-addr", upstreamAddr())
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	upstream := watched{role: "upstream", cpuPIDs: []int{up.pid}, rssPID: up.pid}
	if err := waitOK(ctx, target{URL: "http://" + upstreamAddr() + "/"}, 10*time.Second); err != nil {
		return fmt.Errorf("datapath: upstream: %w", err)
	}
	st.paths = append(st.paths, &benchPath{
		id: "A", desc: pathDescriptions["A"], hop: "-",
		target:  func(size string) target { return workloadTarget(size, upstreamAddr(), upstreamAddr(), "") },
		watched: []watched{upstream},
	})

	if st.has("B") {
		p, err := st.startNginx(ctx, cpu)
		if err != nil {
			return err
		}
		p.watched = append(p.watched, upstream)
		st.paths = append(st.paths, p)
	}

	if st.has("W") {
		st.logf("starting Weft control plane and two sidecars (CPU %d)", cpu)
		w, err := startWeft(ctx, st.cfg.BinDir, filepath.Join(st.cfg.RunDir, "weft"), cpu, st.cfg.SidecarEnv, st.cfg.SidecarArgs)
		if w != nil {
			st.weft = w
		}
		if err != nil {
			return err
		}
		cp := w.mesh.ControlPlane().PID
		cl, sv := w.mesh.SidecarPID(w.clientNode), w.mesh.SidecarPID(w.serverNode)
		p := &benchPath{
			id: "W", desc: pathDescriptions["W"], target: w.target,
			watched: []watched{
				{role: "client proxy", proxy: true, cpuPIDs: []int{cl}, rssPID: cl},
				{role: "server proxy", proxy: true, cpuPIDs: []int{sv}, rssPID: sv},
				{role: "control plane", cpuPIDs: []int{cp}, rssPID: cp},
				upstream,
			},
		}
		if err := waitOK(ctx, p.target("1k"), 15*time.Second); err != nil {
			return fmt.Errorf("datapath: weft pair: %w (logs in %s)", err, w.mesh.RunDir())
		}
		p.hop, p.hopTLS = hopKind(ctx)
		// Idle: configured and ready, one request served, no load yet.
		for _, r := range []struct {
			role string
			pid  int
		}{{"client proxy", cl}, {"server proxy", sv}, {"control plane", cp}} {
			if kb, err := statusKB(r.pid, "VmRSS"); err == nil {
				st.idleRSS[r.role] = kb
			}
			if kb, err := statusKB(r.pid, "RssAnon"); err == nil {
				st.idleRSS[r.role+anonSuffix] = kb
			}
			// The same reading in kB, with the executable's pages apart
			// (the table rounds to 0.1 MiB, about the spread between runs).
			file, _ := statusKB(r.pid, "RssFile")
			st.logf("idle %s: VmRSS %d kB = RssAnon %d + RssFile %d (+ RssShmem)", r.role, st.idleRSS[r.role], st.idleRSS[r.role+anonSuffix], file)
		}
		st.paths = append(st.paths, p)
	}
	return nil
}

func (st *runState) startNginx(ctx context.Context, cpu int) (*benchPath, error) {
	dir := filepath.Join(st.cfg.RunDir, "nginx")
	pk, err := mintPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	root := os.Geteuid() == 0
	server, err := writeNginxConf(nginxConf{
		Role: "server", Dir: filepath.Join(dir, "server"), Listen: hostPort(nginxServerIP, nginxTLSPort),
		ListenGRPC: hostPort(nginxServerIP, nginxGRPCTLS),
		Next:       upstreamAddr(), ServerName: serverName, PKI: pk, Root: root,
	})
	if err != nil {
		return nil, err
	}
	client, err := writeNginxConf(nginxConf{
		Role: "client", Dir: filepath.Join(dir, "client"), Listen: hostPort(nginxClientIP, nginxPort),
		ListenH2: hostPort(nginxClientIP, nginxH2Port), ListenGRPC: hostPort(nginxClientIP, nginxGRPCPort),
		Next: hostPort(nginxServerIP, nginxTLSPort), NextGRPC: hostPort(nginxServerIP, nginxGRPCTLS),
		ServerName: serverName, PKI: pk, Root: root,
	})
	if err != nil {
		return nil, err
	}
	for _, c := range []string{server, client} {
		if err := runBounded(ctx, 10*time.Second, st.logFile("nginx-t"), []string{"nginx", "-t", "-q", "-e", "stderr", "-p", filepath.Dir(c), "-c", c}); err != nil {
			return nil, fmt.Errorf("datapath: nginx config %s: %w", c, err)
		}
	}
	st.logf("starting nginx pair (CPU %d)", cpu)
	sm, err := st.procs.start(ctx, "nginx-server", cpu, nil, st.logFile("nginx-server"), "nginx", "-e", "stderr", "-p", filepath.Dir(server), "-c", server)
	if err != nil {
		return nil, fmt.Errorf("datapath: %w", err)
	}
	cm, err := st.procs.start(ctx, "nginx-client", cpu, nil, st.logFile("nginx-client"), "nginx", "-e", "stderr", "-p", filepath.Dir(client), "-c", client)
	if err != nil {
		return nil, fmt.Errorf("datapath: %w", err)
	}
	sw, err := childOf(ctx, sm.pid, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("datapath: nginx server worker: %w", err)
	}
	cw, err := childOf(ctx, cm.pid, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("datapath: nginx client worker: %w", err)
	}
	p := &benchPath{
		id: "B", desc: pathDescriptions["B"],
		target: func(size string) target {
			addr := hostPort(nginxClientIP, nginxPort)
			switch workloadProto(size) {
			case protoH2:
				addr = hostPort(nginxClientIP, nginxH2Port)
			case protoGRPC:
				addr = hostPort(nginxClientIP, nginxGRPCPort)
			}
			return workloadTarget(size, addr, addr, "")
		},
		watched: []watched{
			{role: "client proxy", proxy: true, cpuPIDs: []int{cm.pid, cw}, rssPID: cw},
			{role: "server proxy", proxy: true, cpuPIDs: []int{sm.pid, sw}, rssPID: sw},
		},
	}
	if err := waitOK(ctx, p.target("1k"), 10*time.Second); err != nil {
		return nil, fmt.Errorf("datapath: nginx pair: %w", err)
	}
	hop, err := checkMTLS(ctx, pk)
	if err != nil {
		return nil, err
	}
	p.hop, p.hopTLS = hop, true
	return p, nil
}

// logProcesses prints every watched process with the CPUs it may run on.
func (st *runState) logProcesses() {
	seen := map[int]bool{}
	for _, p := range st.paths {
		for _, w := range p.watched {
			for _, pid := range w.cpuPIDs {
				if seen[pid] {
					continue
				}
				seen[pid] = true
				cpus, _ := statusField(pid, "Cpus_allowed_list")
				st.logf("process  path %s  %-13s pid %-7d CPUs %s", p.id, w.role, pid, cpus)
			}
		}
	}
}

// sanity checks every path answers 200 with the right body for every size.
func (st *runState) sanity(ctx context.Context) error {
	for _, p := range st.paths {
		for _, size := range st.cfg.Sizes {
			t := p.target(size)
			if t.Proto == protoGRPC {
				if err := grpcCheck(ctx, t); err != nil {
					return fmt.Errorf("datapath: path %s, %s: %w", p.id, size, err)
				}
				continue
			}
			n, err := get(ctx, t)
			if err != nil {
				return fmt.Errorf("datapath: path %s, %s: %w", p.id, size, err)
			}
			if n != sizeBytes[size] {
				return fmt.Errorf("datapath: path %s, %s: got %d bytes, want %d", p.id, size, n, sizeBytes[size])
			}
		}
		st.logf("ok  path %s  %s  (hop: %s)", p.id, p.desc, p.hop)
	}
	return nil
}

func (st *runState) gen() loadGen {
	return loadGen{fortio: st.cfg.Fortio, wrk: st.cfg.Wrk, cpu: st.cfg.LoadCPU}
}

func (st *runState) warmup(ctx context.Context) error {
	st.logf("warm-up: %s at 2000 requests/s per path and size (discarded)", st.cfg.Warmup)
	for _, p := range st.paths {
		for _, size := range st.cfg.Sizes {
			raw := filepath.Join(st.cfg.RunDir, "raw", "warmup."+p.id+"."+size)
			if _, err := st.gen().runFortio(ctx, p.target(size), 2000, st.cfg.LatConns, st.cfg.Warmup, raw+".json", "", raw+".log"); err != nil {
				return fmt.Errorf("datapath: warm-up of path %s: %w", p.id, err)
			}
		}
	}
	return nil
}

func (st *runState) rounds(ctx context.Context) error {
	for r := 1; r <= st.cfg.Rounds; r++ {
		st.logf("round %d/%d", r, st.cfg.Rounds)
		for _, size := range st.cfg.Sizes {
			for _, q := range st.cfg.QPS {
				for _, p := range st.paths {
					if err := st.measure(ctx, r, size, q, p); err != nil {
						return err
					}
				}
			}
			for _, p := range st.paths {
				if err := st.measure(ctx, r, size, 0, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// measure runs one load (qps 0: saturation) against p while sampling CPU
// and peak RSS of everything p watches and the busy time of each core.
func (st *runState) measure(ctx context.Context, round int, size string, qps int, p *benchPath) error {
	name := fmt.Sprintf("r%d.%s.%s.%s", round, size, kindName(qps), p.id)
	raw := filepath.Join(st.cfg.RunDir, "raw", name)
	t0 := map[string]int64{}
	for _, w := range p.watched {
		_ = resetPeakRSS(w.rssPID)
		t, err := sumTicks(w.cpuPIDs)
		if err != nil {
			return fmt.Errorf("datapath: %s: %s exited? %w", name, w.role, err)
		}
		t0[w.role] = t
	}
	c0, err := readCoreBusy()
	if err != nil {
		return err
	}
	s := sample{round: round, size: size, path: p.id, qps: qps, cpu: map[string]float64{}, rss: map[string]int64{}, busy: map[string]float64{}}
	if qps > 0 {
		s.lat, err = st.gen().runFortio(ctx, p.target(size), qps, st.cfg.LatConns, st.cfg.latDur(size, qps), raw+".json", raw+".access.jsonl", raw+".log")
	} else {
		s.sat, err = st.gen().runSaturation(ctx, p.target(size), st.cfg.SatConns, st.cfg.SatDur, raw+".json", raw+".log")
	}
	if err != nil {
		return fmt.Errorf("datapath: %s: %w", name, err)
	}
	c1, err := readCoreBusy()
	if err != nil {
		return err
	}
	for _, w := range p.watched {
		t, err := sumTicks(w.cpuPIDs)
		if err != nil {
			return fmt.Errorf("datapath: %s: %s exited? %w", name, w.role, err)
		}
		s.cpu[w.role] = float64(t-t0[w.role]) / clockTicks
		if kb, err := statusKB(w.rssPID, "VmHWM"); err == nil {
			s.rss[w.role] = kb
		}
	}
	for core, v1 := range c1 {
		v0 := c0[core]
		if tot := v1[1] - v0[1]; tot > 0 {
			s.busy[core] = 100 * float64(v1[0]-v0[0]) / float64(tot)
		}
	}
	st.samples = append(st.samples, s)
	st.logf("%s", s.line(p.watched))
	time.Sleep(500 * time.Millisecond) // let sockets in TIME_WAIT and timers settle between runs
	return nil
}

func kindName(qps int) string {
	if qps == 0 {
		return "sat"
	}
	return fmt.Sprintf("q%d", qps)
}

func sumTicks(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// line is the one-line log of a sample.
func (s sample) line(ws []watched) string {
	var b strings.Builder
	fmt.Fprintf(&b, "r%d %-3s %-5s %s  ", s.round, s.size, kindName(s.qps), s.path)
	if s.qps > 0 {
		fmt.Fprintf(&b, "qps=%.0f n=%d err=%d p50/p90/p99/p99.9=%.0f/%.0f/%.0f/%.0f µs",
			s.lat.QPS, s.lat.Count, s.lat.Errors(), s.lat.Pct["50"], s.lat.Pct["90"], s.lat.Pct["99"], s.lat.Pct["99.9"])
	} else {
		fmt.Fprintf(&b, "rps=%.0f n=%d non2xx=%d", s.sat.RPS, s.sat.Count, s.sat.Non2xx)
		if s.sat.SockErr != "" {
			fmt.Fprintf(&b, " socket-errors=%q", s.sat.SockErr)
		}
	}
	b.WriteString(" |")
	for _, w := range ws {
		fmt.Fprintf(&b, " %s: %.1f ms/1k %.1f MiB;", w.role, 1e6*s.cpu[w.role]/float64(max(1, s.requests())), float64(s.rss[w.role])/1024)
	}
	fmt.Fprintf(&b, " busy cpu0=%.0f%% cpu1=%.0f%%", s.busy["cpu0"], s.busy["cpu1"])
	return b.String()
}

// waitOK polls t until it answers 200 or timeout passes.
func waitOK(ctx context.Context, t target, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if _, err := get(ctx, t); err == nil {
			return nil
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no 200 from %s within %s: %w", t.URL, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get sends one GET and returns the body length of a 200.
func get(ctx context.Context, t target) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return 0, err
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if t.Proto == protoH2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if t.Proto == protoH2 && resp.ProtoMajor != 2 {
		return 0, fmt.Errorf("%s: answered over %s, want HTTP/2", t.URL, resp.Proto)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return int(n), fmt.Errorf("%s: status %d", t.URL, resp.StatusCode)
	}
	return int(n), nil
}

// workloadTarget is the target of a workload on a path whose first hop
// listens at addr (HTTP) and grpcAddr (gRPC), with host as the Host or
// :authority (empty: the address).
func workloadTarget(size, addr, grpcAddr, host string) target {
	proto := workloadProto(size)
	if proto == protoGRPC {
		return target{URL: "http://" + grpcAddr, Host: host, Proto: proto}
	}
	return target{URL: "http://" + addr + workloadPath(size), Host: host, Proto: proto}
}

// grpcCheck makes one gRPC health check to t and wants SERVING.
func grpcCheck(ctx context.Context, t target) error {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if t.Host != "" {
		opts = append(opts, grpc.WithAuthority(t.Host))
	}
	conn, err := grpc.NewClient(t.hostPort(), opts...)
	if err != nil {
		return fmt.Errorf("grpc %s: %w", t.hostPort(), err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("grpc health check via %s: %w", t.hostPort(), err)
	}
	if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health check via %s: %v", t.hostPort(), r.GetStatus())
	}
	return nil
}
