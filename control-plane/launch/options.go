package launch

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"
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
}

func defaultConfig() config {
	return config{
		controlPlaneIP: mesh.LocalControlPlaneIP,
		logger:         slog.New(slog.DiscardHandler),
		logLevel:       "info",
		debounce:       mesh.DefaultDebounce,
		readyTimeout:   mesh.DefaultLocalReadyTimeout,
		stopTimeout:    mesh.DefaultLocalStopTimeout,
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
