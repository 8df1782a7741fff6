package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
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
	// MaxConnecting bounds the proxies sent their first configuration at
	// once (0: no bound).
	MaxConnecting int
	// MaxSubscriptions bounds the resource names one ADS stream
	// subscribes to per type (0: no bound).
	MaxSubscriptions int
	// LogLevel: debug, info, warn or error.
	LogLevel slog.Level
	// ShutdownTimeout bounds the graceful stop of each server.
	ShutdownTimeout time.Duration
	// Mesh is the mesh-wide configuration.
	Mesh meshconfig.Config
	// CA is the mesh CA's configuration.
	CA CAConfig
	// InsecureXDS serves the xDS port in plaintext without authentication
	// (only for sidecars that predate the secure channel).
	InsecureXDS bool
	// Kube is the configuration of --registry=kube (kube.go).
	Kube KubeConfig
}

// CAConfig says where the CA's material comes from and how it issues.
type CAConfig struct {
	// Dir holds generated (or rotated) material, created on first start.
	Dir string
	// Cert, Key, Chain and Roots are user-supplied material instead of Dir:
	// the signing certificate, its key, the intermediates above it and the
	// trust bundle (optional when Cert is a self-signed root).
	Cert, Key, Chain, Roots string
	// CertLifetime is the lifetime of issued certificates.
	CertLifetime time.Duration
	// JoinTokens is the join-token hash file (weftctl up writes it); it is
	// re-read when it changes.
	JoinTokens string
	// JoinTokensPoll is how often the file is checked for changes.
	JoinTokensPoll time.Duration
}

func parseFlags(args []string, out io.Writer) (Config, error) {
	cfg := Config{Mesh: meshconfig.Default()}
	fs := flag.NewFlagSet("weft-control-plane", flag.ContinueOnError)
	fs.SetOutput(out)
	cp := mesh.LocalControlPlaneIP
	fs.StringVar(&cfg.Registry, "registry", "file", "registry kind: file or kube")
	cfg.Kube.flags(fs)
	fs.StringVar(&cfg.File, "file", "", "mesh file (multi-document YAML) for --registry=file")
	fs.DurationVar(&cfg.FilePollInterval, "file-poll-interval", file.DefaultPollInterval, "how often the mesh file is read")
	fs.StringVar(&cfg.XDSAddress, "xds-address", net.JoinHostPort(cp, strconv.Itoa(mesh.PortXDS)), "ADS gRPC listen address")
	fs.StringVar(&cfg.DebugAddress, "debug-address", net.JoinHostPort(cp, strconv.Itoa(mesh.PortDebug)), "debug HTTP listen address")
	fs.DurationVar(&cfg.Debounce, "debounce", mesh.DefaultDebounce, "quiet time after a registry change before a push")
	fs.IntVar(&cfg.MaxConnecting, "max-connecting", mesh.DefaultMaxConnecting, "proxies sent their first configuration at once; more wait their turn (0: no bound)")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", mesh.DefaultMaxSubscriptions, "resource names one ADS stream may subscribe to per type; a request past it ends its stream (ResourceExhausted) (0: no bound)")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "graceful stop bound for each server")
	fs.StringVar(&cfg.Mesh.TrustDomain, "trust-domain", cfg.Mesh.TrustDomain, "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.Mesh.ClusterDomain, "cluster-domain", cfg.Mesh.ClusterDomain, "DNS suffix of service names (<svc>.<ns>.svc.<domain>)")
	fs.DurationVar(&cfg.Mesh.ConnectTimeout.Duration, "connect-timeout", cfg.Mesh.ConnectTimeout.Duration, "upstream connect timeout pushed to every sidecar")
	fs.Func("mtls-mode", "mesh-wide inbound mTLS mode: STRICT (default) or PERMISSIVE; namespace and workload annotations "+mesh.AnnotationMTLSMode+" override it", func(v string) error {
		switch m := meshconfig.MTLSMode(strings.ToUpper(v)); m {
		case meshconfig.MTLSStrict, meshconfig.MTLSPermissive:
			cfg.Mesh.MTLSMode = m
			return nil
		}
		return fmt.Errorf("%q is not STRICT or PERMISSIVE", v)
	})
	fs.Func("outbound-policy", "what sidecars do with hosts outside the registry: REGISTRY_ONLY (default) or ALLOW_ANY", func(v string) error {
		switch p := meshconfig.OutboundPolicy(strings.ToUpper(v)); p {
		case meshconfig.OutboundRegistryOnly, meshconfig.OutboundAllowAny:
			cfg.Mesh.OutboundPolicy = p
			return nil
		}
		return fmt.Errorf("%q is not REGISTRY_ONLY or ALLOW_ANY", v)
	})
	fs.StringVar(&cfg.CA.Dir, "ca-dir", "", "CA directory: the root is generated there on first start and reloaded after (or use --ca-cert/--ca-key)")
	fs.StringVar(&cfg.CA.Cert, "ca-cert", "", "supplied signing CA certificate (PEM), instead of --ca-dir")
	fs.StringVar(&cfg.CA.Key, "ca-key", "", "key of --ca-cert (PEM)")
	fs.StringVar(&cfg.CA.Chain, "ca-chain", "", "intermediates above --ca-cert (PEM, optional)")
	fs.StringVar(&cfg.CA.Roots, "ca-roots", "", "trust bundle (PEM, optional when --ca-cert is a self-signed root)")
	fs.DurationVar(&cfg.CA.CertLifetime, "cert-lifetime", mesh.DefaultCertLifetime, "lifetime of the certificates the CA issues")
	fs.StringVar(&cfg.CA.JoinTokens, "join-tokens", "", "join-token hash file (written by weftctl up), re-read when it changes")
	fs.DurationVar(&cfg.CA.JoinTokensPoll, "join-tokens-poll-interval", time.Second, "how often --join-tokens is checked for changes")
	fs.BoolVar(&cfg.InsecureXDS, "insecure-xds", false, "serve xDS in plaintext without authentication (old sidecars only; not for production)")
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
	case "kube":
		errs = append(errs, c.Kube.validate()...)
	default:
		errs = append(errs, fmt.Errorf("--registry=%q is not supported (file, kube)", c.Registry))
	}
	if c.Debounce < 0 {
		errs = append(errs, errors.New("--debounce must not be negative"))
	}
	if c.MaxConnecting < 0 {
		errs = append(errs, errors.New("--max-connecting must not be negative"))
	}
	if c.MaxSubscriptions < 0 {
		errs = append(errs, errors.New("--max-subscriptions must not be negative"))
	}
	if c.FilePollInterval <= 0 {
		errs = append(errs, errors.New("--file-poll-interval must be positive"))
	}
	if c.Registry == "kube" { // CA in a Secret by default, TokenReview authenticates
		errs = append(errs, c.CA.validateKube()...)
	} else {
		errs = append(errs, c.CA.validate(c.InsecureXDS)...)
	}
	if err := c.Mesh.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c CAConfig) validate(insecure bool) []error {
	var errs []error
	supplied := c.Cert != "" || c.Key != "" || c.Chain != "" || c.Roots != ""
	switch {
	case c.Dir != "" && supplied:
		errs = append(errs, errors.New("--ca-dir and --ca-cert/--ca-key/--ca-chain/--ca-roots are exclusive"))
	case supplied && (c.Cert == "" || c.Key == ""):
		errs = append(errs, errors.New("--ca-cert and --ca-key go together"))
	case !supplied && c.Dir == "" && !insecure:
		errs = append(errs, errors.New("a CA is required: --ca-dir or --ca-cert/--ca-key (or --insecure-xds)"))
	}
	if c.JoinTokens == "" && !insecure {
		errs = append(errs, errors.New("--join-tokens is required (the only authenticator in file mode), unless --insecure-xds"))
	}
	if c.CertLifetime <= 0 {
		errs = append(errs, errors.New("--cert-lifetime must be positive"))
	}
	if c.JoinTokensPoll <= 0 {
		errs = append(errs, errors.New("--join-tokens-poll-interval must be positive"))
	}
	return errs
}

// enabled reports whether a CA is configured.
func (c CAConfig) enabled() bool { return c.Dir != "" || c.Cert != "" }
