package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/control-plane/debug"
	"github.com/weftmesh/weft/control-plane/registry"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/registry/kube"
	"github.com/weftmesh/weft/control-plane/xds"
)

// listening, when set (tests), is told the bound addresses.
type listeningFunc func(xdsAddr, debugAddr net.Addr)

// Run runs the control plane until ctx is done, then stops every server
// gracefully (each within cfg.ShutdownTimeout) and returns nil; it returns
// an error when a listener cannot be bound or a server fails.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return run(ctx, cfg, log, nil)
}

func run(ctx context.Context, cfg Config, log *slog.Logger, listening listeningFunc) error {
	var registryErrors atomic.Uint64
	var k *kubeEnv // --registry=kube only
	if cfg.Registry == "kube" {
		var err error
		if k, err = newKubeEnv(cfg.Kube, log); err != nil {
			return err
		}
	}
	src, err := newSource(cfg, k, log, &registryErrors)
	if err != nil {
		return err
	}
	var bundle atomic.Pointer[[]byte] // the trust bundle (PEM) the leader publishes
	if k != nil {
		// The election starts before the CA opens: on first start only the
		// leader creates the CA Secret, the others wait for it.
		electCtx, stopElection := context.WithCancel(ctx)
		elected := make(chan error, 1)
		go func() { elected <- k.runElection(electCtx, func() []byte { return deref(bundle.Load()) }) }()
		defer func() {
			stopElection()
			if err := <-elected; err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("leader election ended", "error", err)
			}
		}()
	}
	sec, err := newSecurity(ctx, cfg, k, log)
	if err != nil {
		return err
	}
	// The daemon's own Prometheus registry (never the global one).
	reg := prometheus.NewRegistry()
	var x *xds.Server
	xdsMetrics, err := debug.NewMetrics(reg, func() int { return x.Connected() }, counters{&registryErrors},
		debug.WithPendingPushes(func() int { return x.PendingPushes() }))
	if err != nil {
		return fmt.Errorf("weft-control-plane: metrics: %w", err)
	}
	xopts := []xds.Option{
		xds.WithLogger(log.With("component", "xds")), xds.WithDebounce(cfg.Debounce), xds.WithObserver(xdsMetrics),
		xds.WithMaxConnecting(cfg.MaxConnecting), xds.WithMaxSubscriptions(cfg.MaxSubscriptions), xds.WithReturnMemory(returnMemory),
	}
	if sec.auth != nil && !cfg.InsecureXDS {
		xopts = append(xopts, xds.WithAuthenticator(nodeAuth{sec.auth}))
	}
	x = xds.New(cfg.Mesh, xopts...)
	grpcServer := newGRPCServer(sec.creds())
	x.Register(grpcServer)
	debugOpts := []debug.Option{debug.WithCertificates(x.Certificates), debug.WithGatherer(reg)}
	if sec.authority != nil {
		x.SetTrustBundle(sec.authority.Bundle())
		bundle.Store(bundlePEM(sec.authority))
		ca.NewServer(sec.authority, sec.auth, log.With("component", "ca"), ca.WithIssuedHook(func(_ context.Context, who ca.Identity, issued *ca.Issued) {
			if err := x.SetCertificate(mesh.NodeID(who.Workload, who.Namespace), issued.Chain); err != nil {
				log.Error("ca: issued certificate not recorded", "identity", who.String(), "err", err)
			}
			x.SetTrustBundle(issued.Bundle)
			bundle.Store(bundlePEM(sec.authority))
		})).Register(grpcServer)
		rot := &rotator{dir: cfg.CA.Dir, a: sec.authority, x: x, self: sec.self, log: log.With("component", "ca")}
		debugOpts = append(debugOpts,
			debug.WithRootRotation(rot.Rotate, errRotation),
			debug.WithMetrics(func(w io.Writer) {
				sec.metrics.write(w, len(x.Certificates()), len(sec.authority.Bundle()))
			}))
	}

	var lc net.ListenConfig
	xdsLis, err := lc.Listen(ctx, "tcp", cfg.XDSAddress)
	if err != nil {
		return fmt.Errorf("weft-control-plane: xds: %w", err)
	}
	debugLis, err := lc.Listen(ctx, "tcp", cfg.DebugAddress)
	if err != nil {
		_ = xdsLis.Close()
		return fmt.Errorf("weft-control-plane: debug: %w", err)
	}
	httpServer := &http.Server{
		Handler:           debug.NewHandler(x, counters{&registryErrors}, log, debugOpts...),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Info("weft-control-plane listening", "xds", xdsLis.Addr().String(), "debug", debugLis.Addr().String(),
		"registry", cfg.Registry, "file", cfg.File, "secure_xds", !cfg.InsecureXDS, "mtls_mode", string(cfg.Mesh.MTLSMode))
	if listening != nil {
		listening(xdsLis.Addr(), debugLis.Addr())
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src.Run(ctx, x.Update) })
	g.Go(func() error { return x.Run(ctx) })
	if sec.self != nil {
		g.Go(func() error { return sec.self.Run(ctx) })
	}
	if sec.tokens != nil {
		g.Go(func() error { return sec.tokens.Run(ctx) })
	}
	g.Go(func() error {
		if err := grpcServer.Serve(xdsLis); err != nil {
			return fmt.Errorf("weft-control-plane: xds: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		// x.Run has ended the ADS streams, so GracefulStop returns soon.
		done := make(chan struct{})
		go func() { grpcServer.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(cfg.ShutdownTimeout):
			grpcServer.Stop()
			<-done
		}
		return nil
	})
	g.Go(func() error {
		if err := httpServer.Serve(debugLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("weft-control-plane: debug: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := httpServer.Shutdown(sctx); err != nil {
			_ = httpServer.Close()
		}
		return nil
	})
	err = g.Wait()
	log.Info("weft-control-plane stopped")
	return err
}

// newGRPCServer builds the gRPC server of the xDS port (ADS and the CA
// service); creds are the transport credentials (nil: plaintext).
//
// Every sidecar has its own connection, so per-connection buffers are
// memory per proxy: gRPC's defaults (a 32 KiB read and a 32 KiB write
// buffer held for the connection's life) would be 64 KiB per proxy on
// their own. The write buffer is taken from a shared pool for each write
// and given back after the flush (grpc-go's default since
// SharedWriteBuffer was deprecated); for the read buffer see
// readBufferSize.
func newGRPCServer(creds credentials.TransportCredentials) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.ReadBufferSize(readBufferSize(creds != nil)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(10000),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	return grpc.NewServer(opts...)
}

// readBufferSize is the gRPC read buffer of an xDS connection. In
// plaintext, 8 KiB: grpc-go reads a TCP connection into buffers of that
// size taken from a shared pool when data is ready, and holds none while
// the connection is idle. Over TLS it cannot (it only does so for a bare
// TCP connection) and would keep a bufio.Reader of that size for the
// connection's life, in front of the TLS connection's own record buffer:
// 0, no buffer of its own, saves those 8 KiB per proxy (8.1 KB of live heap
// per proxy at 5,000 TLS connections; BENCHMARKS.md) and costs no system
// call, since TLS reads whole records.
func readBufferSize(secure bool) int {
	if secure {
		return 0
	}
	return 8 << 10
}

// security is the CA, its authenticator and the control plane's own
// certificate; every field is nil with --insecure-xds and no CA.
type security struct {
	authority *ca.Authority
	auth      ca.Authenticator
	tokens    *ca.TokenFile
	self      *selfIdentity
	metrics   *caMetrics
	insecure  bool
}

func newSecurity(ctx context.Context, cfg Config, k *kubeEnv, log *slog.Logger) (*security, error) {
	s := &security{metrics: newCAMetrics(), insecure: cfg.InsecureXDS}
	if k != nil && !cfg.InsecureXDS {
		return s.kube(ctx, cfg, k, log)
	}
	if cfg.CA.JoinTokens != "" {
		t, err := ca.OpenTokenFile(cfg.CA.JoinTokens, cfg.CA.JoinTokensPoll, log.With("component", "ca"))
		if err != nil {
			return nil, fmt.Errorf("weft-control-plane: %w", err)
		}
		s.tokens, s.auth = t, t
	}
	if !cfg.CA.enabled() {
		return s, nil
	}
	a, err := openAuthority(ctx, cfg, log.With("component", "ca"), s.metrics)
	if err != nil {
		return nil, err
	}
	s.authority = a
	if s.auth == nil {
		s.auth = refuseAll{}
	}
	if s.self, err = newSelfIdentity(a, log.With("component", "identity")); err != nil {
		return nil, fmt.Errorf("weft-control-plane: %w", err)
	}
	return s, nil
}

// creds are the xDS port's transport credentials: TLS 1.3 with the
// control plane's certificate, or nil (plaintext) with --insecure-xds.
func (s *security) creds() credentials.TransportCredentials {
	if s.insecure || s.self == nil {
		return nil
	}
	return credentials.NewTLS(s.self.tlsConfig())
}

// refuseAll authenticates nobody (a CA without --join-tokens).
type refuseAll struct{}

func (refuseAll) Authenticate(context.Context, string) (ca.Identity, error) {
	return ca.Identity{}, fmt.Errorf("ca: %w: no authenticator configured", ca.ErrUnauthenticated)
}

func newSource(cfg Config, k *kubeEnv, log *slog.Logger, errs *atomic.Uint64) (registry.Source, error) {
	if cfg.Registry == "kube" {
		return kube.New(k.client, k.dyn,
			kube.WithResync(cfg.Kube.Resync),
			kube.WithLogger(log.With("component", "registry")),
			kube.WithErrorHandler(func(error) { errs.Add(1) })), nil
	}
	switch cfg.Registry {
	case "file":
		return file.New(cfg.File,
			file.WithPollInterval(cfg.FilePollInterval),
			file.WithLogger(log.With("component", "registry")),
			file.WithErrorHandler(func(err error) {
				if err != nil {
					errs.Add(1)
				}
			}),
		), nil
	}
	return nil, fmt.Errorf("weft-control-plane: unknown registry %q", cfg.Registry)
}

type counters struct{ registryErrors *atomic.Uint64 }

func (c counters) RegistryErrors() uint64 { return c.registryErrors.Load() }
