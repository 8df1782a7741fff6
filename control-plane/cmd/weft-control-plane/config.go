package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// Config is everything the daemon is told on its command line.
type Config struct {
	// Registry kind: "file" (the only one yet).
	Registry string
	// File is the mesh file of the file registry.
	File string
	// FilePollInterval is how often the file registry reads the file.
	FilePollInterval time.Duration
	// XDSAddress is where ADS (and later the CA) is served.
	XDSAddress string
	// DebugAddress is where the debug HTTP server listens.
	DebugAddress string
	// Debounce is the quiet time before a push.
	Debounce time.Duration
	// LogLevel: debug, info, warn or error.
	LogLevel slog.Level
	// ShutdownTimeout bounds the graceful stop of each server.
	ShutdownTimeout time.Duration
	// Mesh is the mesh-wide configuration.
	Mesh meshconfig.Config
}

func parseFlags(args []string, out io.Writer) (Config, error) {
	cfg := Config{Mesh: meshconfig.Default()}
	fs := flag.NewFlagSet("weft-control-plane", flag.ContinueOnError)
	fs.SetOutput(out)
	cp := mesh.LocalControlPlaneIP
	fs.StringVar(&cfg.Registry, "registry", "file", "registry kind: file")
	fs.StringVar(&cfg.File, "file", "", "mesh file (multi-document YAML) for --registry=file")
	fs.DurationVar(&cfg.FilePollInterval, "file-poll-interval", file.DefaultPollInterval, "how often the mesh file is read")
	fs.StringVar(&cfg.XDSAddress, "xds-address", net.JoinHostPort(cp, strconv.Itoa(mesh.PortXDS)), "ADS gRPC listen address")
	fs.StringVar(&cfg.DebugAddress, "debug-address", net.JoinHostPort(cp, strconv.Itoa(mesh.PortDebug)), "debug HTTP listen address")
	fs.DurationVar(&cfg.Debounce, "debounce", mesh.DefaultDebounce, "quiet time after a registry change before a push")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "graceful stop bound for each server")
	fs.StringVar(&cfg.Mesh.TrustDomain, "trust-domain", cfg.Mesh.TrustDomain, "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.Mesh.ClusterDomain, "cluster-domain", cfg.Mesh.ClusterDomain, "DNS suffix of service names (<svc>.<ns>.svc.<domain>)")
	fs.DurationVar(&cfg.Mesh.ConnectTimeout.Duration, "connect-timeout", cfg.Mesh.ConnectTimeout.Duration, "upstream connect timeout pushed to every sidecar")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	var errs []error
	switch c.Registry {
	case "file":
		if c.File == "" {
			errs = append(errs, errors.New("--file is required with --registry=file"))
		}
	default:
		errs = append(errs, fmt.Errorf("--registry=%q is not supported (file)", c.Registry))
	}
	if c.Debounce < 0 {
		errs = append(errs, errors.New("--debounce must not be negative"))
	}
	if c.FilePollInterval <= 0 {
		errs = append(errs, errors.New("--file-poll-interval must be positive"))
	}
	if err := c.Mesh.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
