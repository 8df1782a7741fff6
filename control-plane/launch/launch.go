package launch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// controlPlaneName is the control plane's process (and log file) name.
const controlPlaneName = "control-plane"

// ControlPlane is where the running control plane listens.
type ControlPlane struct {
	XDSAddress   string
	DebugAddress string
	// LogFile collects the output of every run of the control plane.
	LogFile string
	// PID of the current run, 0 when it is not running.
	PID int
}

// Mesh is a running local mesh: the control plane, one sidecar per
// WorkloadEntry and the entries' apps. Its methods are safe for concurrent
// use.
type Mesh struct {
	cfg      config
	meshFile string
	binDir   string
	runDir   string
	out      *syncWriter
	client   *http.Client

	workloads []Workload
	sec       *security // set by prepareSecurity, read-only after

	mu       sync.Mutex
	cp       *process
	sidecars map[string]*process // by node id
	apps     map[string]*process // by node id
	stopped  bool
}

// Start runs the mesh described by meshFile with the binaries in binDir
// (weft-control-plane, weft-sidecar, and whatever the entries' commands
// name). It blocks until the control plane's /healthz, every sidecar's /ready
// and every app's ports answer, each within the ready timeout, and stops
// everything it started if any of that fails. The processes are not tied to
// ctx: stop them with Stop.
func Start(ctx context.Context, meshFile, binDir string, opts ...Option) (*Mesh, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	cfg.finish()

	absFile, err := filepath.Abs(meshFile)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	absBin, err := filepath.Abs(binDir)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	workloads, err := ReadWorkloads(absFile, absBin)
	if err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:       cfg,
		meshFile:  absFile,
		binDir:    absBin,
		runDir:    cfg.runDir,
		workloads: workloads,
		client: &http.Client{
			Timeout:   time.Second,
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		},
		sidecars: map[string]*process{},
		apps:     map[string]*process{},
	}
	if cfg.output != nil {
		m.out = &syncWriter{out: cfg.output}
	}
	if m.runDir == "" {
		if m.runDir, err = os.MkdirTemp("", "weft-local-"); err != nil {
			return nil, fmt.Errorf("launch: %w", err)
		}
	}
	if err := os.MkdirAll(m.runDir, 0o750); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if err := m.start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cfg.stopTimeout)
		defer cancel()
		return nil, errors.Join(err, m.Stop(stopCtx))
	}
	return m, nil
}

// ReadWorkloads parses and validates a mesh file as the control plane does
// and returns what Start would run for it, sorted by node id; binDir fills
// {{.BinDir}} in the entries' commands.
func ReadWorkloads(meshFile, binDir string) ([]Workload, error) {
	data, err := os.ReadFile(meshFile) //nolint:gosec // G304: the user's mesh file.
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	entries, err := workloadEntries(meshFile, data)
	if err != nil {
		return nil, err
	}
	out := make([]Workload, 0, len(entries))
	seen := map[string]bool{}
	for _, e := range entries {
		w, err := workloadFromEntry(e, binDir)
		if err != nil {
			return nil, err
		}
		if seen[w.NodeID()] {
			return nil, fmt.Errorf("launch: %s: WorkloadEntry %s appears twice", meshFile, w.NodeID())
		}
		seen[w.NodeID()] = true
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID() < out[j].NodeID() })
	return out, nil
}

func (m *Mesh) start(ctx context.Context) error {
	if err := m.prepareSecurity(ctx); err != nil {
		return err
	}
	if err := m.StartControlPlane(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	for _, w := range m.workloads {
		p, err := startProcess(sidecarName(w), m.sidecarArgs(w), m.sidecarEnv(), m.LogFile(sidecarName(w)), m.out)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		m.sidecars[w.NodeID()] = p
		m.cfg.logger.Info("started sidecar", "workload", w.NodeID(), "pid", p.pid())
	}
	for _, w := range m.workloads {
		if len(w.Command) == 0 {
			continue
		}
		p, err := startProcess(appName(w), w.Command, m.cfg.env, m.LogFile(appName(w)), m.out)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		m.apps[w.NodeID()] = p
		m.cfg.logger.Info("started app", "workload", w.NodeID(), "pid", p.pid())
	}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, m.cfg.readyTimeout)
	defer cancel()
	for _, w := range m.workloads {
		if err := m.waitHTTP(ctx, m.sidecar(w.NodeID()), "http://"+w.AdminAddress()+"/ready"); err != nil {
			return err
		}
		if p := m.app(w.NodeID()); p != nil {
			for _, addr := range w.AppAddresses() {
				if err := m.waitTCP(ctx, p, addr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sidecarName(w Workload) string { return w.NodeID() + "/sidecar" }
func appName(w Workload) string     { return w.NodeID() + "/app" }

// sidecarEnv is the sidecars' environment: WithEnv's (or the launcher's)
// plus WithSidecarEnv's.
func (m *Mesh) sidecarEnv() []string {
	if len(m.cfg.sidecarEnv) == 0 {
		return m.cfg.env
	}
	env := m.cfg.env
	if env == nil {
		env = os.Environ()
	}
	return append(slices.Clip(env), m.cfg.sidecarEnv...)
}

func (m *Mesh) sidecarArgs(w Workload) []string {
	return append([]string{
		filepath.Join(m.binDir, mesh.BinarySidecar),
		"--workload=" + w.Name,
		"--namespace=" + w.Namespace,
		"--service-account=" + w.ServiceAccount,
		"--ip=" + w.Address,
		"--xds-address=" + m.cfg.xdsAddress,
		"--admin-address=" + w.AdminAddress(),
		"--health-address=" + w.HealthAddress(),
		"--log-level=" + m.cfg.logLevel,
	}, slices.Concat(m.securitySidecarArgs(w), w.SidecarArgs, m.cfg.sidecarArgs)...)
}

func (m *Mesh) controlPlaneArgs() []string {
	return append([]string{
		filepath.Join(m.binDir, mesh.BinaryControlPlane),
		"--registry=file",
		"--file=" + m.meshFile,
		"--xds-address=" + m.cfg.xdsAddress,
		"--debug-address=" + m.cfg.debugAddress,
		"--debounce=" + m.cfg.debounce.String(),
		"--log-level=" + m.cfg.logLevel,
	}, append(m.securityControlPlaneArgs(), m.cfg.controlPlaneArgs...)...)
}

// StartControlPlane starts the control plane if it is not running and waits
// for its /healthz. Start calls it; tests call it again after
// KillControlPlane or StopControlPlane, with the same addresses and file.
func (m *Mesh) StartControlPlane(ctx context.Context) error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return errors.New("launch: mesh is stopped")
	}
	if m.cp != nil && !m.cp.exited() {
		m.mu.Unlock()
		return nil
	}
	p, err := startProcess(controlPlaneName, m.controlPlaneArgs(), m.cfg.env, m.LogFile(controlPlaneName), m.out)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.cp = p
	m.mu.Unlock()
	m.cfg.logger.Info("started control plane", "pid", p.pid(), "xds", m.cfg.xdsAddress, "debug", m.cfg.debugAddress)
	ctx, cancel := context.WithTimeout(ctx, m.cfg.readyTimeout)
	defer cancel()
	return m.waitHTTP(ctx, p, "http://"+m.cfg.debugAddress+"/healthz")
}

// KillControlPlane sends SIGKILL to the control plane and waits for it to
// exit: a crash, as far as the sidecars can tell.
func (m *Mesh) KillControlPlane() error {
	m.mu.Lock()
	p := m.cp
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.kill()
}

// StopControlPlane stops the control plane gracefully (SIGTERM, then SIGKILL
// after the stop timeout).
func (m *Mesh) StopControlPlane(ctx context.Context) error {
	m.mu.Lock()
	p := m.cp
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(ctx, m.cfg.stopTimeout)
}

// RestartSidecar stops a workload's sidecar (by node id; SIGTERM, then
// SIGKILL after the stop timeout) and starts it again with the same flags,
// appending to the same log. It does not wait for the new sidecar to be
// ready: tests use it to watch a sidecar that has no configuration yet
// (the control plane is down, or has nothing for it).
func (m *Mesh) RestartSidecar(ctx context.Context, nodeID string) error {
	var w Workload
	found := false
	for _, x := range m.workloads {
		if x.NodeID() == nodeID {
			w, found = x, true
		}
	}
	if !found {
		return fmt.Errorf("launch: no workload %s", nodeID)
	}
	if old := m.sidecar(nodeID); old != nil {
		if err := old.stop(ctx, m.cfg.stopTimeout); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("launch: mesh is stopped")
	}
	p, err := startProcess(sidecarName(w), m.sidecarArgs(w), m.sidecarEnv(), m.LogFile(sidecarName(w)), m.out)
	if err != nil {
		return err
	}
	m.sidecars[nodeID] = p
	m.cfg.logger.Info("restarted sidecar", "workload", nodeID, "pid", p.pid())
	return nil
}

// Stop stops the apps, then the sidecars, then the control plane, each
// group in parallel with SIGTERM and, after the stop timeout, SIGKILL. It is
// idempotent.
func (m *Mesh) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	var apps, sidecars []*process
	for _, p := range m.apps {
		apps = append(apps, p)
	}
	for _, p := range m.sidecars {
		sidecars = append(sidecars, p)
	}
	cp := m.cp
	m.mu.Unlock()
	err := errors.Join(m.stopAll(ctx, apps), m.stopAll(ctx, sidecars))
	if cp != nil {
		err = errors.Join(err, cp.stop(ctx, m.cfg.stopTimeout))
	}
	return err
}

func (m *Mesh) stopAll(ctx context.Context, ps []*process) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.stop(ctx, m.cfg.stopTimeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Wait blocks until ctx ends (returning nil) or a process exits without
// having been asked to (returning an error that names it and quotes the end
// of its log).
func (m *Mesh) Wait(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m.mu.Lock()
		all := make([]*process, 0, 1+len(m.sidecars)+len(m.apps))
		if m.cp != nil {
			all = append(all, m.cp)
		}
		for _, p := range m.sidecars {
			all = append(all, p)
		}
		for _, p := range m.apps {
			all = append(all, p)
		}
		m.mu.Unlock()
		for _, p := range all {
			if p.exited() && !p.expected() {
				return m.exitError(p)
			}
		}
	}
}

// MeshFile is the absolute path of the mesh file the control plane follows.
func (m *Mesh) MeshFile() string { return m.meshFile }

// RunDir holds the log files.
func (m *Mesh) RunDir() string { return m.runDir }

// LogFile is the log file of the process with that name ("control-plane",
// "<workload>.<namespace>/sidecar", "<workload>.<namespace>/app").
func (m *Mesh) LogFile(name string) string {
	return filepath.Join(m.runDir, strings.ReplaceAll(name, "/", "-")+".log")
}

// SidecarLogFile and AppLogFile are the log files of one workload.
func (m *Mesh) SidecarLogFile(w Workload) string { return m.LogFile(sidecarName(w)) }

// AppLogFile is the log file of a workload's app.
func (m *Mesh) AppLogFile(w Workload) string { return m.LogFile(appName(w)) }

// ControlPlane says where the control plane listens.
func (m *Mesh) ControlPlane() ControlPlane {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := ControlPlane{XDSAddress: m.cfg.xdsAddress, DebugAddress: m.cfg.debugAddress, LogFile: m.LogFile(controlPlaneName)}
	if m.cp != nil && !m.cp.exited() {
		cp.PID = m.cp.pid()
	}
	return cp
}

// Workloads are the running workloads, sorted by node id.
func (m *Mesh) Workloads() []Workload { return append([]Workload(nil), m.workloads...) }

// Workload finds a workload by name (in any namespace) or node id.
func (m *Mesh) Workload(name string) (Workload, bool) {
	for _, w := range m.workloads {
		if w.Name == name || w.NodeID() == name {
			return w, true
		}
	}
	return Workload{}, false
}

// SidecarPID is the pid of a workload's sidecar (by node id), 0 if unknown.
func (m *Mesh) SidecarPID(nodeID string) int {
	if p := m.sidecar(nodeID); p != nil {
		return p.pid()
	}
	return 0
}

func (m *Mesh) sidecar(nodeID string) *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sidecars[nodeID]
}

func (m *Mesh) app(nodeID string) *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apps[nodeID]
}

// waitHTTP polls url until it answers 200, p exits, or ctx ends.
func (m *Mesh) waitHTTP(ctx context.Context, p *process, url string) error {
	return m.poll(ctx, p, url, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := m.client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
}

// waitTCP polls addr until it accepts a connection, p exits, or ctx ends.
func (m *Mesh) waitTCP(ctx context.Context, p *process, addr string) error {
	var d net.Dialer
	return m.poll(ctx, p, "tcp "+addr, func(ctx context.Context) error {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := d.DialContext(dctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func (m *Mesh) poll(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if p.exited() {
			return m.exitError(p)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("launch: %s: not ready (%s) within %s: %w%s", p.name, what, m.cfg.readyTimeout, err, logTail(p.logFile.Name(), 20))
		case <-p.done:
		case <-t.C:
		}
	}
}

func (m *Mesh) exitError(p *process) error {
	return fmt.Errorf("launch: %s exited: %w%s", p.name, exitErr(p.err), logTail(p.logFile.Name(), 20))
}

// logTail returns the last n lines of a log file, indented, for an error.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path) //nolint:gosec // G304: our own log file.
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n  last lines of " + path + ":\n    " + strings.Join(lines, "\n    ")
}

// exitErr is a process's exit error; a clean exit is still unexpected here.
func exitErr(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}
