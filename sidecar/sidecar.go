package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/admin"
	authzfilter "github.com/weftmesh/weft/sidecar/filter/authz"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/gateway"
	"github.com/weftmesh/weft/sidecar/h1server"
	"github.com/weftmesh/weft/sidecar/identity"
	"github.com/weftmesh/weft/sidecar/inbound"
	"github.com/weftmesh/weft/sidecar/internal/cpconn"
	"github.com/weftmesh/weft/sidecar/internal/heaprelease"
	"github.com/weftmesh/weft/sidecar/internal/memtrim"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
	"github.com/weftmesh/weft/sidecar/transport"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// DefaultDrainTimeout bounds how long shutdown waits for in-flight requests.
const DefaultDrainTimeout = 5 * time.Second

// DefaultTrimInterval is how often weft-sidecar drops its executable's
// mappings again after start (Config.TrimInterval): longer than the GC
// cycles' spacing under load (a few seconds at 1000 requests/s), so a
// period's working set is the request path's and a cycle's, and rare
// enough that mapping them again (a few hundred minor faults) costs
// nothing measurable.
const DefaultTrimInterval = 5 * time.Second

// Config is what one sidecar needs to run.
type Config struct {
	// Workload, Namespace and ServiceAccount identify the sidecar; the
	// xDS node id is mesh.NodeID(Workload, Namespace).
	Workload       string
	Namespace      string
	ServiceAccount string
	// IP is the workload's address; admin and health bind on it by
	// default, and the control plane puts the listeners on it.
	IP string
	// XDSAddress is the control plane's host:port.
	XDSAddress string
	// AdminAddress and HealthAddress default to IP:15000 and IP:15020.
	AdminAddress  string
	HealthAddress string
	// DrainTimeout bounds the graceful shutdown (DefaultDrainTimeout).
	DrainTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// XDSOptions are extra xdsclient options (tests shorten backoffs).
	XDSOptions []xdsclient.Option

	// CABundle is the trust bundle (PEM roots) that verifies the control
	// plane at bootstrap; TokenFile holds the credential, re-read at each
	// call. Both are required unless Plaintext.
	CABundle  string
	TokenFile string
	// TrustDomain defaults to mesh.DefaultTrustDomain.
	TrustDomain string
	// Plaintext runs without identity: plaintext xDS, no certificate, h2c
	// tunnels only, transport sockets NACKed. For tests and bring-up only.
	Plaintext bool
	// IdentityOptions are extra identity.Manager options (tests shorten
	// lifetimes and backoffs).
	IdentityOptions []identity.Option
	// TracingOptions are extra tracing.Tracer options (tests); the
	// access log goes to AccessLogOutput (default os.Stdout).
	TracingOptions  []tracing.Option
	AccessLogOutput io.Writer

	// Mode is mesh.ModeSidecar (default) or mesh.ModeEgressGateway: the
	// inbound listener then serves the egress gateway (package gateway)
	// with GatewayOptions (its resolver).
	Mode           string
	GatewayOptions []gateway.Option

	// Capture is pod mode behind `weft-sidecar init` rules: the outbound
	// listener binds 0.0.0.0:<its port> (REDIRECT from OUTPUT sends to
	// 127.0.0.1) and both listeners read each connection's original
	// destination (package capture).
	Capture bool
	// AppProbes is mesh.EnvAppProbes' JSON: the app's original HTTP
	// probes, answered on the health port under mesh.AppProbePathPrefix.
	AppProbes string
	// HTTP2Server is what serves the listeners' HTTP/2 connections:
	// HTTP2ServerWeft (default; sidecar/h2server) or HTTP2ServerNetHTTP
	// (net/http's HTTP/2 server, the fallback).
	HTTP2Server string
	// NetSocketIO keeps the net package's reads and writes on the
	// data-path connections (listeners' and transport's) instead of
	// sidecar/internal/rawtcp's raw system calls (the default, false),
	// which do not wake the runtime's sysmon thread per request: the
	// fallback.
	NetSocketIO bool
	// HTTP2Client is what carries the HTTP/2 hops (the tunnel's
	// multiplexed connection, h2c to a gRPC app):
	// HTTP2ClientWeft (default; sidecar/h2client) or
	// HTTP2ClientNetHTTP (net/http's transport, the fallback).
	HTTP2Client string
	// HTTP2WriteTimeout bounds each socket write to an HTTP/2 connection
	// that h2server serves or h2client carries (their WriteTimeout,
	// WithWriteTimeout): a peer that does not take a write within it
	// (it reads nothing, or too slowly) fails the connection. It bounds a
	// pending write, not a stream's life. Default
	// DefaultHTTP2WriteTimeout; negative: no bound. net/http's HTTP/2
	// server and transport (the fallbacks) keep their own settings.
	HTTP2WriteTimeout time.Duration
	// MTLSOptions are extra options of the mTLS tunnel (benchmarks turn
	// its HTTP/1.1 pool off to compare).
	MTLSOptions []transport.MTLSOption

	// DNSProxy runs the DNS proxy (package dnsproxy) on DNSAddress
	// (DefaultDNSAddress): A/AAAA for the mesh services of the xDS config,
	// everything else forwarded to the nameservers of ResolvConf
	// (/etc/resolv.conf).
	DNSProxy   bool
	DNSAddress string
	ResolvConf string

	// TrimAfterStart drops, once the first configuration is applied, its
	// listeners are bound and their servers accept, the mappings of the
	// executable's pages only starting up touched (package memtrim; the heap is left to the
	// runtime). weft-sidecar sets it; a process that runs other
	// things beside the sidecar (tests) need not.
	TrimAfterStart bool
	// TrimInterval, with TrimAfterStart, drops those mappings again every
	// TrimInterval (0: only once, after start): the executable's pages
	// that stay resident are then what the sidecar ran since the last
	// drop, not everything it ever ran (a burst's, a probe's, a
	// handshake's code), and its RSS under steady load is its working
	// set (package memtrim). What it runs next is mapped again by minor
	// faults, from the page cache.
	TrimInterval time.Duration

	// ReleaseHeap returns to the OS the heap a burst of load left behind
	// once the load has dropped (package heaprelease: two GC cycles and a
	// scavenge, at most once per drop). weft-sidecar sets it; it acts on
	// the whole process, so tests that run sidecars in-process need not.
	ReleaseHeap bool
}

// DefaultXDSAddress is where the control plane listens in local mode.
var DefaultXDSAddress = net.JoinHostPort("127.0.0.1", strconv.Itoa(mesh.PortXDS))

// withDefaults fills unset fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.ServiceAccount == "" {
		c.ServiceAccount = "default"
	}
	if c.XDSAddress == "" {
		c.XDSAddress = DefaultXDSAddress
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.HTTP2WriteTimeout == 0 {
		c.HTTP2WriteTimeout = DefaultHTTP2WriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TrustDomain == "" {
		c.TrustDomain = mesh.DefaultTrustDomain
	}
	var errs []error
	switch c.Mode {
	case "":
		c.Mode = mesh.ModeSidecar
	case mesh.ModeSidecar, mesh.ModeEgressGateway:
	default:
		errs = append(errs, fmt.Errorf("mode %q is not %s or %s", c.Mode, mesh.ModeSidecar, mesh.ModeEgressGateway))
	}
	switch c.HTTP2Server {
	case "":
		c.HTTP2Server = HTTP2ServerWeft
	case HTTP2ServerWeft, HTTP2ServerNetHTTP:
	default:
		errs = append(errs, fmt.Errorf("http2 server %q is not %s or %s", c.HTTP2Server, HTTP2ServerWeft, HTTP2ServerNetHTTP))
	}
	switch c.HTTP2Client {
	case "":
		c.HTTP2Client = transport.HTTP2ClientWeft
	case transport.HTTP2ClientWeft, transport.HTTP2ClientNetHTTP:
	default:
		errs = append(errs, fmt.Errorf("http2 client %q is not %s or %s", c.HTTP2Client, transport.HTTP2ClientWeft, transport.HTTP2ClientNetHTTP))
	}
	if !c.Plaintext && (c.CABundle == "" || c.TokenFile == "") {
		errs = append(errs, errors.New("ca bundle and token file are required (or plaintext mode)"))
	}
	if c.Workload == "" {
		errs = append(errs, errors.New("workload is required"))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if _, err := netip.ParseAddr(c.IP); err != nil {
		errs = append(errs, fmt.Errorf("ip %q is not an IP address", c.IP))
	} else {
		if c.AdminAddress == "" {
			c.AdminAddress = net.JoinHostPort(c.IP, strconv.Itoa(mesh.PortAdmin))
		}
		if c.HealthAddress == "" {
			c.HealthAddress = net.JoinHostPort(c.IP, strconv.Itoa(mesh.PortHealth))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("sidecar: config: %w", errors.Join(errs...))
	}
	return c, nil
}

// Run runs the sidecar until ctx is done, then drains and returns nil. It
// returns an error when the sidecar cannot start (bad config, admin or
// health address in use) or a component fails for good.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("node", mesh.NodeID(cfg.Workload, cfg.Namespace))

	var (
		sec       *secureChannel
		mgr       *identity.Manager
		ca        *identity.GRPCCA
		adsHTTP   *http.Client
		serverTLS *tls.Config
		trOpts    []transport.Option
		// xds is the ADS client once made: weft_xds_connected reads its
		// status when scraped (the metrics are made before it).
		xds atomic.Pointer[xdsclient.Client]
	)
	xdsConnected := func() bool {
		c := xds.Load()
		return c != nil && c.Status().Connected
	}
	metrics := admin.NewMetrics(nil, xdsConnected)
	if !cfg.Plaintext {
		if sec, err = newSecureChannel(cfg); err != nil {
			return err
		}
		id, err := spiffeid.FromString(mesh.SPIFFEID(cfg.TrustDomain, cfg.Namespace, cfg.ServiceAccount))
		if err != nil {
			return fmt.Errorf("sidecar: identity: %w", err)
		}
		var m *admin.Metrics
		opts := append([]identity.Option{
			identity.WithLogger(log),
			identity.WithRenewalHook(func(err error) {
				r := "ok"
				if err != nil {
					r = "error"
				}
				m.Renewals.WithLabelValues(r).Inc()
			}),
		}, cfg.IdentityOptions...)
		if mgr, err = identity.New(id, opts...); err != nil {
			return fmt.Errorf("sidecar: %w", err)
		}
		m = admin.NewMetrics(mgr, xdsConnected)
		metrics = m
		var caHTTP *http.Client
		var closeIdle func()
		adsHTTP, caHTTP, closeIdle = sec.clients(log)
		defer closeIdle()
		ca = identity.NewGRPCCA(caHTTP, cpconn.BaseURL(cfg.XDSAddress, true), sec.cred)
		serverTLS = identity.ServerTLSConfig(mgr, mgr, sec.td, log)
		mtlsDialer := transport.NewDialer(mesh.DefaultConnectTimeout)
		mtlsDialer.Source = srcAddr(cfg)
		mtlsDialer.NetSocketIO = cfg.NetSocketIO
		trOpts = append(trOpts, transport.WithTunnel(transport.NewMTLS(mtlsDialer,
			func(peerIDs []string, alpn string) (*tls.Config, error) {
				ids := make([]spiffeid.ID, 0, len(peerIDs))
				for _, p := range peerIDs {
					id, err := spiffeid.FromString(p)
					if err != nil {
						return nil, fmt.Errorf("sidecar: peer id %q: %w", p, err)
					}
					ids = append(ids, id)
				}
				return identity.ClientTLSConfigALPN(mgr, mgr, ids, alpn, log), nil
			}, append([]transport.MTLSOption{transport.WithMTLSHTTP2Client(cfg.HTTP2Client), transport.WithMTLSHTTP2WriteTimeout(cfg.HTTP2WriteTimeout)}, cfg.MTLSOptions...)...)))
	}

	var tables atomic.Pointer[router.Table]
	tr := transport.New(append(trOpts, transport.WithSourceAddr(srcAddr(cfg)), transport.WithNetSocketIO(cfg.NetSocketIO), transport.WithHTTP2Client(cfg.HTTP2Client), transport.WithHTTP2WriteTimeout(cfg.HTTP2WriteTimeout))...)
	defer tr.Close()
	// One authorization filter for both listeners; its denial counter is
	// served with the sidecar's metrics.
	az := authzfilter.New(log, authzfilter.WithRegisterer(metrics.Registry))
	obs, tracer, tcp := newTelemetry(cfg, log, metrics, &tables)
	lm := newListenerManager(log, cfg.DrainTimeout, &tables, captureSpecs(cfg, map[string]serverSpec{
		mesh.ListenerOutbound: {newServer: func() server {
			return withHTTP2(cfg, outbound.NewServer(outbound.NewHandler(&tables, tr, log, outbound.WithAuthz(az), outbound.WithTelemetry(obs),
				outbound.WithRegisterer(metrics.Registry)), log))
		}},
		mesh.ListenerInbound: {
			newServer: func() server {
				if cfg.Mode == mesh.ModeEgressGateway {
					// The gateway stays on net/http's server.
					return inbound.NewHTTPServer(newGateway(cfg, log, &tables, metrics.Registry, tcp), log)
				}
				return withHTTP2(cfg, inbound.NewServer(inbound.NewHandler(&tables, tr, log, inbound.WithAuthz(az), inbound.WithTelemetry(obs)), log))
			},
			wrap: func(ln net.Listener, srv server) net.Listener { //nolint:contextcheck // the listener owns its accept loop and the connections it serves until Close and the server's Shutdown
				// h1server serves each connection on the goroutine that
				// classified it; net/http's (the gateway's) from Accept.
				var serve func(net.Conn) bool
				if h1, ok := srv.(*h1server.Server); ok {
					serve = h1.ServeConn
				}
				return inbound.NewListener(ln, serverTLS, log, serve)
			},
		},
	}))
	lm.netSocketIO = cfg.NetSocketIO

	// The validator compiles each candidate; the update handler installs
	// the table compiled for the snapshot it publishes. Both run on the
	// xDS client's goroutine.
	dns, err := newDNSServer(ctx, cfg, log, metrics.Registry)
	if err != nil {
		return err
	}
	var compiled *router.Table
	// Ejections and restorations are logged (they were compiled with a
	// discarding logger before, so no breaker decision was visible).
	routerLog := router.WithLogger(log.With("component", "outlier"))
	xdsOpts := append([]xdsclient.Option{
		xdsclient.WithLogger(log),
		xdsclient.WithValidator(func(s *xdsclient.Snapshot) error {
			// Each candidate derives from the last accepted one, whose table
			// is compiled (published or still warming): it lends the
			// clusters that did not change. With only the published one,
			// the first configuration's clusters were compiled four times
			// over (CDS, EDS, LDS and RDS each accepted before it was
			// complete).
			prev := tables.Load()
			if compiled != nil {
				prev = compiled
			}
			t, err := router.Compile(s, prev, routerLog)
			if err != nil {
				return err
			}
			if _, _, err := telemetry.Parse(s); err != nil {
				return err
			}
			if cfg.Mode == mesh.ModeEgressGateway {
				if err := gateway.Validate(s); err != nil {
					return err
				}
			}
			if cfg.DNSProxy {
				if _, err := dnsServices(s); err != nil {
					return err
				}
			}
			compiled = t
			return nil
		}),
		xdsclient.WithUpdateHandler(func(s *xdsclient.Snapshot) { //nolint:contextcheck // the tracer provider it applies is owned by the run errgroup
			t := compiled
			if t == nil || t.Snapshot != s {
				var err error
				if t, err = router.Compile(s, tables.Load(), routerLog); err != nil {
					// Cannot happen: s passed the validator.
					log.Error("published snapshot does not compile", "error", err)
					return
				}
			}
			tables.Store(t)
			dns.update(s)
			if err := obs.Apply(s); err != nil {
				log.Warn("telemetry configuration not applied", "error", err)
			}
			lm.notify()
		}),
	}, cfg.XDSOptions...)
	if sec != nil {
		xdsOpts = append(xdsOpts, xdsclient.WithSecrets(mgr), xdsclient.WithHTTPClient(adsHTTP, cpconn.BaseURL(cfg.XDSAddress, true)))
	}
	xc, err := xdsclient.New(cfg.XDSAddress, xdsclient.Node{
		Workload: cfg.Workload, Namespace: cfg.Namespace, ServiceAccount: cfg.ServiceAccount, IP: cfg.IP,
	}, xdsOpts...)
	if err != nil {
		dns.close()
		return fmt.Errorf("sidecar: %w", err)
	}

	xds.Store(xc)

	var draining atomic.Bool
	ready := func() bool {
		if mgr != nil {
			if _, err := mgr.GetX509SVID(); err != nil {
				return false
			}
		}
		return !draining.Load() && lm.ready()
	}

	adminLn, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.AdminAddress)
	if err != nil {
		dns.close()
		return fmt.Errorf("sidecar: admin: %w", err)
	}
	healthLn, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HealthAddress)
	if err != nil {
		adminLn.Close()
		dns.close()
		return fmt.Errorf("sidecar: health: %w", err)
	}
	var certs admin.Certs
	if mgr != nil {
		certs = mgr
	}
	// h1server serves the admin and health ports too: readiness polls
	// then run the code the data path has mapped already, not net/http's
	// server (whose pages an idle sidecar would map again after its trim).
	adminSrv := h1server.New(admin.NewServer(admin.NewHandler(ready, xc, certs, log), log))
	healthSrv := h1server.New(admin.NewServer(appHealth(cfg, admin.NewHealthHandler(ready, metrics.Handler()), log), log))

	log.Info("sidecar starting", "ip", cfg.IP, "xds", cfg.XDSAddress, "admin", cfg.AdminAddress, "health", cfg.HealthAddress)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := xc.Run(gctx); err != nil {
			return fmt.Errorf("sidecar: xds: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		draining.Store(true)
		return nil
	})
	g.Go(func() error {
		// Flushes the spans at the end, after the listeners drained.
		<-lm.done
		return tracer.Run(gctx)
	})
	g.Go(func() error {
		// The data path starts with a certificate: no inbound connection
		// is accepted before the sidecar can prove who it is.
		if mgr != nil {
			if err := mgr.WaitReady(gctx); err == nil {
				log.Info("identity ready", "spiffe_id", mgr.ID().String(), "serial", mgr.Status().Serial)
			}
		}
		return lm.run(gctx)
	})
	if mgr != nil {
		g.Go(func() error { return mgr.Run(gctx, ca) })
	}
	if dns != nil {
		g.Go(func() error { return dns.serve(gctx) })
	}
	if cfg.TrimAfterStart {
		g.Go(func() error {
			select {
			case <-gctx.Done():
				return nil
			case <-lm.started:
			}
			var tr memtrim.Trimmer
			if trimAfterStart(gctx, log, tr.Trim) && cfg.TrimInterval > 0 {
				trimEvery(gctx, log, cfg.TrimInterval, tr.Trim)
			}
			// Parked until shutdown: a goroutine's exit reads the runtime's
			// function tables (pclntab) and runs errgroup's and the
			// scheduler's exit code, which would map those pages again
			// right after they were dropped.
			<-gctx.Done()
			return nil
		})
	}
	if cfg.ReleaseHeap {
		g.Go(func() error {
			heaprelease.New(heaprelease.Policy{}, log.With("component", "heaprelease")).Run(gctx, 0)
			return nil
		})
	}
	for _, s := range []struct {
		name string
		srv  *h1server.Server
		ln   net.Listener
	}{{"admin", adminSrv, adminLn}, {"health", healthSrv, healthLn}} {
		g.Go(func() error { //nolint:contextcheck // the server's connections end with its Shutdown below, not with gctx
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("sidecar: %s server: %w", s.name, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			// Keep answering "not ready" until the listeners drained.
			<-lm.done
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := s.srv.Shutdown(sctx); err != nil {
				s.srv.Close()
			}
			return nil
		})
	}
	err = g.Wait()
	log.Info("sidecar stopped")
	return err
}

// trimAfterStart gives back the memory only starting up used
// (trim: memtrim.Trim) and logs what it did. It runs no code after the drop
// that a sidecar would not run anyway: the debug line is formatted only
// when the logger takes it (at the default level, slog's code, and the
// arguments' allocation, are not touched again).
// It reports whether the drop worked (trimming again is then worth it).
func trimAfterStart(ctx context.Context, log *slog.Logger, trim func() (memtrim.Result, error)) bool {
	debug := log.Enabled(ctx, slog.LevelDebug)
	r, err := trim()
	if err != nil {
		log.Warn("start-up memory not given back", "error", err)
		return false
	}
	if r.Mappings == 0 && runtime.GOOS == "linux" {
		log.Warn("start-up memory not given back: no read-only mapping of the executable found")
		return false
	}
	if debug {
		log.Debug("start-up memory given back", "executable_mappings", r.Mappings, "executable_bytes", r.Unmapped)
	}
	return r.Mappings > 0
}

// trimEvery drops the executable's mappings again (trim: a
// memtrim.Trimmer's)
// every interval until ctx ends, so that what stays mapped is what the
// sidecar ran lately. Under steady load that is the request path's code
// and what each GC cycle reads (the collector's code, the function tables
// its stack scans read); without it, also every page any earlier work
// mapped, from the first request's handshakes to a burst's. It logs
// nothing but a failure, after which it stops trimming.
func trimEvery(ctx context.Context, log *slog.Logger, interval time.Duration, trim func() (memtrim.Result, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := trim(); err != nil {
				log.Warn("executable pages no longer dropped", "error", err)
				return
			}
		}
	}
}
