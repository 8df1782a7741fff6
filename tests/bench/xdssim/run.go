package xdssim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
)

// Config is one simulator run.
type Config struct {
	// Bin is the directory holding weft-control-plane.
	Bin string
	// Dir is the run directory (mesh file, CA, tokens, logs).
	Dir  string
	Mesh MeshSpec
	// Proxies is the number of simulated sidecars (at most Mesh.Endpoints()).
	Proxies int
	// Delta makes the clients use delta ADS instead of state of the world.
	Delta bool
	// Conns is the number of gRPC connections the streams share (a real
	// sidecar has its own; sharing keeps the simulator's TLS cost down).
	Conns int
	// Changes is the number of single endpoint changes measured one by one.
	Changes int
	// ChurnRate changes per second for ChurnFor (0: no churn phase).
	ChurnRate float64
	ChurnFor  time.Duration
	// Storm runs the reconnect storm.
	Storm bool
	// Settle bounds each wait (connect, one change, storm).
	Settle time.Duration
	// ProfileDir, when set, receives pprof profiles of the control plane:
	// heap-connected.pb.gz (after a GC, every proxy connected),
	// heap-changes.pb.gz (after a GC, after the single changes: their
	// allocations are its alloc_space less heap-connected's),
	// cpu-churn.pb.gz (the churn phase) and cpu-storm.pb.gz (the first
	// 10 s of the reconnect storm).
	ProfileDir string
	// ControlPlaneArgs are added to weft-control-plane's command line
	// (e.g. --max-connecting=128, to compare settings).
	ControlPlaneArgs []string
	Log              *slog.Logger
}

// Report is what a run measured.
type Report struct {
	Mode           string
	Proxies        int
	Services       int
	Endpoints      int
	ConnectTime    time.Duration // all proxies ACKed their first config
	CPUSecConnect  float64       // control-plane CPU seconds while connecting
	RSSBytes       int64         // control-plane RSS with every proxy connected (1 s after the last first ACK)
	RSSAnon        int64         // its anonymous part (heap, stacks, runtime), same moment
	RSSPeak        int64         // control-plane peak RSS (VmHWM) from the first connect to that moment
	RSSBaseline    int64         // control-plane RSS before any proxy (registry loaded and pushed)
	HeapBaseline   int64         // control-plane live heap (HeapAlloc after a GC) before any proxy
	HeapConnected  int64         // the same with every proxy connected
	StackBaseline  int64         // control-plane goroutine stacks (StackInuse) before any proxy
	StackConnected int64         // the same with every proxy connected
	RSSSteady      int64         // control-plane RSS after the single changes (steady state)
	InitialBytes   int64         // bytes received per proxy for its first config (mean)
	Changes        []ChangeResult
	Churn          *ChurnResult
	StormTime      time.Duration
	StormCPUSec    float64
	Disconnections int64
}

// ChangeResult is one endpoint change.
type ChangeResult struct {
	Affected     int           // proxies that ACKed a new EDS version
	P50, P99     time.Duration // file write -> a proxy's EDS ACK
	Max          time.Duration // -> the last affected proxy's ACK
	BytesPerProx float64       // EDS bytes received per affected proxy
	CPUSec       float64       // control-plane CPU seconds for the change
}

// ChurnResult is the churn phase.
type ChurnResult struct {
	Changes     int
	Rate        float64
	Duration    time.Duration
	EDSPushes   int64   // EDS responses per affected proxy, mean
	PushesTotal float64 // pushes completed (all affected proxies ACKed)
	Mean, P99   time.Duration
	// LagBySecond: pushes completed each second and their latency.
	LagBySecond []LagSample
	CPUSec      float64
	DrainTime   time.Duration // after the last change, until no push is pending
}

// LagSample is one second of the churn phase.
type LagSample struct {
	Second    int
	Pushes    int
	Mean, P99 time.Duration
}

type sim struct {
	cfg      Config
	meshFile string
	moved    map[int]int
	gen      int
	cp       *exec.Cmd
	bundle   *x509.CertPool
	debug    string
	xds      string
	conns    []*grpc.ClientConn
	clients  []*client
	runCtx   context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
	disc     int64
	discMu   sync.Mutex
}

// Run runs the simulation and returns what it measured. It starts the
// control plane itself and stops it (and every client) before returning.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Proxies > cfg.Mesh.Endpoints() {
		return nil, fmt.Errorf("xdssim: %d proxies but only %d workloads", cfg.Proxies, cfg.Mesh.Endpoints())
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 32
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &sim{cfg: cfg, moved: map[int]int{}}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("xdssim: %w", err)
	}
	rep := &Report{Mode: "sotw", Proxies: cfg.Proxies, Services: cfg.Mesh.Services, Endpoints: cfg.Mesh.Endpoints()}
	if cfg.Delta {
		rep.Mode = "delta"
	}
	tokens, bundle, err := s.prepare(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.startControlPlane(ctx); err != nil {
		return nil, err
	}
	defer s.stopControlPlane()
	rep.RSSBaseline = rss(s.cp.Process.Pid)
	rep.HeapBaseline, rep.StackBaseline, _ = s.liveHeap(ctx)

	s.bundle = bundle
	if err := s.dial(bundle); err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range s.conns {
			_ = c.Close()
		}
	}()
	s.clients = make([]*client, cfg.Proxies)
	for i := range s.clients {
		w := cfg.Mesh.Workload(i)
		s.clients[i] = newClient(i, w, address(i, 0), tokens[i], cfg.Delta)
	}

	// Connect.
	if err := resetPeakRSS(s.cp.Process.Pid); err != nil {
		cfg.Log.Warn("peak RSS not reset: it includes the start", "err", err)
	}
	cpu0 := cpuSeconds(s.cp.Process.Pid)
	t0 := time.Now()
	s.startClients(ctx)
	defer s.stopClients()
	if err := s.waitReady(ctx, "connect"); err != nil {
		return rep, err
	}
	rep.ConnectTime = time.Since(t0)
	rep.CPUSecConnect = cpuSeconds(s.cp.Process.Pid) - cpu0
	time.Sleep(time.Second) // let the heap settle before reading RSS
	ms := procStatus(s.cp.Process.Pid)
	rep.RSSBytes, rep.RSSAnon, rep.RSSPeak = ms.rss, ms.anon, ms.hwm
	rep.HeapConnected, rep.StackConnected, _ = s.liveHeap(ctx)
	if err := s.saveProfile(ctx, "heap?gc=1", "heap-connected.pb.gz"); err != nil {
		return rep, err
	}
	var total int64
	for _, c := range s.clients {
		for i := range c.rxBytes {
			total += c.rxBytes[i].Load()
		}
	}
	rep.InitialBytes = total / int64(len(s.clients))
	cfg.Log.Info("connected", "proxies", cfg.Proxies, "in", rep.ConnectTime, "cp_rss_mb", rep.RSSBytes>>20)

	// Single changes, one at a time.
	for k := 0; k < cfg.Changes; k++ {
		r, err := s.oneChange(ctx, k)
		if err != nil {
			return rep, err
		}
		cfg.Log.Info("change", "n", k, "affected", r.Affected, "p50", r.P50, "p99", r.P99, "max", r.Max, "eds_bytes_per_proxy", int(r.BytesPerProx))
		rep.Changes = append(rep.Changes, r)
	}

	rep.RSSSteady = rss(s.cp.Process.Pid)
	// What the changes allocated is its alloc_space less heap-connected's
	// (a heap profile is as of the last GC: one is forced, after the RSS
	// was read).
	if err := s.saveProfile(ctx, "heap?gc=1", "heap-changes.pb.gz"); err != nil {
		return rep, err
	}

	if cfg.ChurnRate > 0 && cfg.ChurnFor > 0 {
		done := s.profileAsync(ctx, fmt.Sprintf("profile?seconds=%d", max(1, int(cfg.ChurnFor.Seconds()))), "cpu-churn.pb.gz")
		defer done()
		r, err := s.churn(ctx)
		if err != nil {
			return rep, err
		}
		rep.Churn = r
	}

	if cfg.Storm {
		done := s.profileAsync(ctx, "profile?seconds=10", "cpu-storm.pb.gz")
		defer done()
		cpu0 := cpuSeconds(s.cp.Process.Pid)
		d, err := s.storm(ctx)
		if err != nil {
			return rep, err
		}
		rep.StormTime = d
		rep.StormCPUSec = cpuSeconds(s.cp.Process.Pid) - cpu0
	}
	s.discMu.Lock()
	rep.Disconnections = s.disc
	s.discMu.Unlock()
	return rep, nil
}

// prepare writes the mesh file, a CA directory, one join token per
// simulated proxy and the token hashes for --join-tokens.
func (s *sim) prepare(ctx context.Context) (tokens []string, bundle *x509.CertPool, err error) {
	s.meshFile = filepath.Join(s.cfg.Dir, "mesh.yaml")
	if err := s.writeMesh(); err != nil {
		return nil, nil, err
	}
	td := spiffeid.RequireTrustDomainFromString(mesh.DefaultTrustDomain)
	caDir := filepath.Join(s.cfg.Dir, "ca")
	if _, err := ca.Open(ctx, td, ca.NewDirStore(caDir)); err != nil {
		return nil, nil, fmt.Errorf("xdssim: %w", err)
	}
	jt := ca.NewJoinTokens(nil)
	tokens = make([]string, s.cfg.Proxies)
	for i := range tokens {
		w := s.cfg.Mesh.Workload(i)
		if tokens[i], err = jt.Mint(ca.Identity{Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Workload: w.Name}, 0); err != nil {
			return nil, nil, fmt.Errorf("xdssim: %w", err)
		}
	}
	if err := jt.WriteFile(filepath.Join(caDir, "join-tokens.json")); err != nil {
		return nil, nil, fmt.Errorf("xdssim: %w", err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(caDir, ca.FileBundle))
	if err != nil {
		return nil, nil, fmt.Errorf("xdssim: %w", err)
	}
	bundle = x509.NewCertPool()
	for b, rest := pem.Decode(pemBytes); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("xdssim: bundle: %w", err)
		}
		bundle.AddCert(c)
	}
	return tokens, bundle, nil
}

func (s *sim) writeMesh() error {
	tmp := s.meshFile + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	if err := s.cfg.Mesh.Write(f, s.moved); err != nil {
		_ = f.Close()
		return fmt.Errorf("xdssim: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	if err := os.Rename(tmp, s.meshFile); err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	return nil
}

// randomLoopback picks 127.<100..250>.<0..255>.<1..250>.
func randomLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(151), rand.IntN(256), 1+rand.IntN(250))
}

func (s *sim) startControlPlane(ctx context.Context) error {
	ip := randomLoopback()
	s.xds = net.JoinHostPort(ip, strconv.Itoa(mesh.PortXDS))
	s.debug = net.JoinHostPort(ip, strconv.Itoa(mesh.PortDebug))
	caDir := filepath.Join(s.cfg.Dir, "ca")
	logf, err := os.Create(filepath.Join(s.cfg.Dir, "control-plane.log"))
	if err != nil {
		return fmt.Errorf("xdssim: %w", err)
	}
	args := append([]string{
		"--registry=file", "--file=" + s.meshFile,
		"--xds-address=" + s.xds, "--debug-address=" + s.debug,
		"--ca-dir=" + caDir, "--join-tokens=" + filepath.Join(caDir, "join-tokens.json"),
		"--trust-domain=" + mesh.DefaultTrustDomain, "--log-level=warn",
	}, s.cfg.ControlPlaneArgs...)
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.Bin, mesh.BinaryControlPlane), args...) //nolint:gosec // G204: our own binary.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("xdssim: start control plane: %w", err)
	}
	s.cp = cmd
	// Healthy = the first registry state is pushed.
	deadline := time.Now().Add(s.cfg.Settle)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.debug+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("xdssim: control plane not healthy at %s within %v (see %s)", s.debug, s.cfg.Settle, logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sim) stopControlPlane() {
	if s.cp == nil || s.cp.Process == nil {
		return
	}
	_ = s.cp.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cp.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cp.Process.Kill()
		<-done
	}
}

// dial opens the shared connections: TLS 1.3, the server's certificate
// verified against the CA bundle and its SPIFFE ID checked, as the sidecar does.
func (s *sim) dial(bundle *x509.CertPool) error {
	want := mesh.SPIFFEID(mesh.DefaultTrustDomain, mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount)
	tc := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// The SVID has a URI SAN and no DNS name: verified below instead.
		InsecureSkipVerify: true, //nolint:gosec // G402: chain and SPIFFE ID verified in VerifyPeerCertificate.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("xdssim: no server certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: bundle, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return fmt.Errorf("xdssim: server certificate: %w", err)
			}
			for _, u := range certs[0].URIs {
				if u.String() == want {
					return nil
				}
			}
			return fmt.Errorf("xdssim: server is not %s", want)
		},
	}
	for range s.cfg.Conns {
		cc, err := grpc.NewClient(s.xds, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		if err != nil {
			return fmt.Errorf("xdssim: dial: %w", err)
		}
		s.conns = append(s.conns, cc)
	}
	return nil
}

// startClients runs every client on its own goroutine; a client whose
// stream fails reconnects after a short backoff (counted).
func (s *sim) startClients(ctx context.Context) {
	s.runCtx, s.stop = context.WithCancel(ctx)
	for i, c := range s.clients {
		cc := s.conns[i%len(s.conns)]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for s.runCtx.Err() == nil {
				if err := c.run(s.runCtx, cc); err != nil && s.runCtx.Err() == nil {
					s.discMu.Lock()
					s.disc++
					s.discMu.Unlock()
					s.cfg.Log.Debug("stream ended", "client", c.id, "err", err)
					time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
				}
			}
		}()
	}
}

func (s *sim) stopClients() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

// waitReady waits until every client has ACKed its first config.
func (s *sim) waitReady(ctx context.Context, what string) error {
	deadline := time.Now().Add(s.cfg.Settle)
	for {
		ready := 0
		for _, c := range s.clients {
			if c.readyNs.Load() != 0 {
				ready++
			}
		}
		if ready == len(s.clients) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("xdssim: %s: %d of %d proxies ready after %v", what, ready, len(s.clients), s.cfg.Settle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// move changes the address of one WorkloadEntry of service svc (one
// endpoint change) and rewrites the mesh file; it returns the write time.
func (s *sim) move(svc int) (time.Time, error) {
	s.gen++
	rep := rand.IntN(s.cfg.Mesh.EndpointsPerService)
	s.moved[rep*s.cfg.Mesh.Services+svc] = s.gen
	// The change is "seen" when the file is in place.
	err := s.writeMesh()
	return time.Now(), err
}

// oneChange moves one endpoint and waits until the set of proxies that
// ACKed a new EDS version stops growing.
func (s *sim) oneChange(ctx context.Context, k int) (ChangeResult, error) {
	n := len(s.clients)
	before := make([]int64, n)
	bytes0 := make([]int64, n)
	for i, c := range s.clients {
		before[i] = c.edsAcks.Load()
		bytes0[i] = c.rxBytes[1].Load()
	}
	cpu0 := cpuSeconds(s.cp.Process.Pid)
	pushes0, err := s.metric(ctx, "weft_xds_push_latency_seconds_count")
	if err != nil {
		return ChangeResult{}, err
	}
	svc := (k * 7919) % s.cfg.Mesh.Services
	t0, err := s.move(svc)
	if err != nil {
		return ChangeResult{}, err
	}
	// Done when the control plane reports the push complete (every proxy
	// it changed ACKed it: weft_xds_push_latency_seconds_count grows) and
	// the clients agree (the set of proxies with a new EDS ACK is stable).
	deadline := t0.Add(s.cfg.Settle)
	for {
		if c, err := s.metric(ctx, "weft_xds_push_latency_seconds_count"); err == nil && c > pushes0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return ChangeResult{}, fmt.Errorf("xdssim: change %d: no completed push within %v", k, s.cfg.Settle)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // late responses of the same push
	var lats []time.Duration
	var bytes int64
	for i, c := range s.clients {
		if c.edsAcks.Load() > before[i] {
			lats = append(lats, time.Duration(c.edsAckNs.Load()-t0.UnixNano()))
			bytes += c.rxBytes[1].Load() - bytes0[i]
		}
	}
	r := ChangeResult{Affected: len(lats), CPUSec: cpuSeconds(s.cp.Process.Pid) - cpu0}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.P50, r.P99, r.Max = pct(lats, 50), pct(lats, 99), lats[len(lats)-1]
		r.BytesPerProx = float64(bytes) / float64(len(lats))
	}
	return r, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

// churn moves endpoints at cfg.ChurnRate for cfg.ChurnFor (each change
// one endpoint of a rotating service) and follows, each second, the
// control plane's completed pushes and their latency (registry change ->
// every affected proxy ACKed: weft_xds_push_latency_seconds), which stay
// flat when pushes keep up and grow when a backlog builds.
func (s *sim) churn(ctx context.Context) (*ChurnResult, error) {
	cfg := s.cfg
	n := len(s.clients)
	acks0 := make([]int64, n)
	for i, c := range s.clients {
		acks0[i] = c.edsAcks.Load()
	}
	cpu0 := cpuSeconds(s.cp.Process.Pid)
	hist0, err := s.histogram(ctx, "weft_xds_push_latency_seconds")
	if err != nil {
		return nil, err
	}
	interval := time.Duration(float64(time.Second) / cfg.ChurnRate)
	start := time.Now()
	end := start.Add(cfg.ChurnFor)
	changes := 0
	r := &ChurnResult{Rate: cfg.ChurnRate, Duration: cfg.ChurnFor}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for time.Now().Before(end) {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-t.C:
			}
			if _, err := s.move((changes * 31) % cfg.Mesh.Services); err != nil {
				return err
			}
			changes++
		}
		return nil
	})
	g.Go(func() error {
		prev := hist0
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for sec := 0; time.Now().Before(end); sec++ {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
			h, err := s.histogram(gctx, "weft_xds_push_latency_seconds")
			if err != nil {
				continue
			}
			d := h.sub(prev)
			prev = h
			r.LagBySecond = append(r.LagBySecond, LagSample{Second: sec, Pushes: int(d.count), Mean: d.mean(), P99: d.quantile(0.99)})
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	r.Changes = changes
	// Drain: until the pushes that carry the last changes completed.
	drain0 := time.Now()
	for time.Since(drain0) < cfg.Settle {
		h, err := s.histogram(ctx, "weft_xds_push_latency_seconds")
		p, perr := s.metric(ctx, "weft_xds_pending_pushes")
		if err == nil && perr == nil && p == 0 && h.count > hist0.count {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.DrainTime = time.Since(drain0)
	r.CPUSec = cpuSeconds(s.cp.Process.Pid) - cpu0
	h, err := s.histogram(ctx, "weft_xds_push_latency_seconds")
	if err == nil {
		d := h.sub(hist0)
		r.PushesTotal = d.count
		r.Mean, r.P99 = d.mean(), d.quantile(0.99)
	}
	var pushes, affected int64
	for i, c := range s.clients {
		if d := c.edsAcks.Load() - acks0[i]; d > 0 {
			pushes += d
			affected++
		}
	}
	if affected > 0 {
		r.EDSPushes = pushes / affected
	}
	return r, nil
}

// storm cuts every stream at once, then reconnects every client at once
// on new connections, and returns the time from the reconnection until all
// have ACKed their config again.
func (s *sim) storm(ctx context.Context) (time.Duration, error) {
	s.stopClients()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	for _, c := range s.clients {
		c.readyNs.Store(0)
	}
	// The old streams are gone once the control plane says so.
	if err := s.waitConnected(ctx, 0); err != nil {
		return 0, err
	}
	if err := s.dial(s.bundle); err != nil {
		return 0, err
	}
	t0 := time.Now()
	s.startClients(ctx)
	if err := s.waitReady(ctx, "reconnect storm"); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// waitConnected polls /metrics until weft_xds_connected_proxies == n.
func (s *sim) waitConnected(ctx context.Context, n int) error {
	deadline := time.Now().Add(s.cfg.Settle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if v, err := s.metric(ctx, "weft_xds_connected_proxies"); err == nil && int(v) == n {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("xdssim: control plane did not reach %d connected proxies", n)
}
