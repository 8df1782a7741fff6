package launch

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

// Option tunes Start.
type Option func(*config)

type config struct {
	controlPlaneIP string
	xdsAddress     string
	debugAddress   string
	runDir         string
	output         io.Writer
	logger         *slog.Logger
	logLevel       string
	debounce       time.Duration
	readyTimeout   time.Duration
	stopTimeout    time.Duration
	env            []string
	sidecarEnv     []string
	sidecarArgs    []string
	secure         secureMode
	certLifetime   time.Duration
	mtlsMode       meshconfig.MTLSMode
	trustDomain    string
	// controlPlaneArgs are extra flags (egress.go).
	controlPlaneArgs []string
}

type secureMode int

const (
	secureAuto secureMode = iota // when the sidecar binary supports it
	secureOn
	secureOff
)

func defaultConfig() config {
	return config{
		controlPlaneIP: mesh.LocalControlPlaneIP,
		logger:         slog.New(slog.DiscardHandler),
		logLevel:       "info",
		debounce:       mesh.DefaultDebounce,
		readyTimeout:   mesh.DefaultLocalReadyTimeout,
		stopTimeout:    mesh.DefaultLocalStopTimeout,
		certLifetime:   mesh.DefaultCertLifetime,
		mtlsMode:       meshconfig.MTLSStrict,
		trustDomain:    defaultTrustDomain(),
	}
}

func (c *config) finish() {
	if c.xdsAddress == "" {
		c.xdsAddress = net.JoinHostPort(c.controlPlaneIP, strconv.Itoa(mesh.PortXDS))
	}
	if c.debugAddress == "" {
		c.debugAddress = net.JoinHostPort(c.controlPlaneIP, strconv.Itoa(mesh.PortDebug))
	}
}

// WithControlPlaneIP binds the control plane's xDS and debug ports (the mesh
// defaults) on ip instead of 127.0.0.1. Tests use a random 127.x.y.z.
func WithControlPlaneIP(ip string) Option { return func(c *config) { c.controlPlaneIP = ip } }

// WithXDSAddress sets the control plane's xDS address (host:port).
func WithXDSAddress(addr string) Option { return func(c *config) { c.xdsAddress = addr } }

// WithDebugAddress sets the control plane's debug HTTP address (host:port).
func WithDebugAddress(addr string) Option { return func(c *config) { c.debugAddress = addr } }

// WithRunDir puts the processes' log files (<name>.log) under dir. Without
// it Start makes a temporary directory, which Stop leaves in place.
func WithRunDir(dir string) Option { return func(c *config) { c.runDir = dir } }

// WithOutput also streams every process's output to w, each line prefixed
// with the process's name.
func WithOutput(w io.Writer) Option { return func(c *config) { c.output = w } }

// WithLogger sets the launcher's own logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLogLevel sets --log-level of the control plane and the sidecars.
func WithLogLevel(level string) Option { return func(c *config) { c.logLevel = level } }

// WithDebounce sets the control plane's --debounce.
func WithDebounce(d time.Duration) Option { return func(c *config) { c.debounce = d } }

// WithReadyTimeout bounds each wait for readiness.
func WithReadyTimeout(d time.Duration) Option { return func(c *config) { c.readyTimeout = d } }

// WithStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
func WithStopTimeout(d time.Duration) Option { return func(c *config) { c.stopTimeout = d } }

// WithEnv sets the environment of every process (default: the launcher's).
func WithEnv(env []string) Option { return func(c *config) { c.env = env } }

// WithSidecarEnv adds KEY=value entries to the sidecars' environment only
// (after WithEnv's or the launcher's, so they win): benchmarks try GOGC or
// GODEBUG on the proxies without changing the control plane or the apps.
func WithSidecarEnv(kv ...string) Option {
	return func(c *config) { c.sidecarEnv = append(c.sidecarEnv, kv...) }
}

// WithSidecarArgs adds flags to every sidecar's command line, after the
// workload's own (benchmarks compare a sidecar flag's settings, e.g.
// --trim-interval=0, on the same mesh).
func WithSidecarArgs(args ...string) Option {
	return func(c *config) { c.sidecarArgs = append(c.sidecarArgs, args...) }
}

// WithCertLifetime sets the lifetime of the certificates the control
// plane's CA issues (--cert-lifetime; tests use a few seconds).
func WithCertLifetime(d time.Duration) Option { return func(c *config) { c.certLifetime = d } }

// WithMTLSMode sets the mesh-wide mTLS mode (--mtls-mode).
func WithMTLSMode(m meshconfig.MTLSMode) Option { return func(c *config) { c.mtlsMode = m } }

// WithTrustDomain sets the mesh's trust domain.
func WithTrustDomain(td string) Option { return func(c *config) { c.trustDomain = td } }

// WithSecureXDS requires the secure channel (CA, join tokens, TLS): Start
// fails rather than fall back when the sidecar binary lacks its flags.
func WithSecureXDS() Option { return func(c *config) { c.secure = secureOn } }

// WithInsecureXDS runs the control plane with --insecure-xds and passes no
// identity flags to the sidecars.
func WithInsecureXDS() Option { return func(c *config) { c.secure = secureOff } }
