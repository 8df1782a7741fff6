package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weftmesh/weft/control-plane/debug"
	"github.com/weftmesh/weft/control-plane/registry"
	"github.com/weftmesh/weft/control-plane/registry/file"
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
	src, err := newSource(cfg, log, &registryErrors)
	if err != nil {
		return err
	}
	x := xds.New(cfg.Mesh, xds.WithLogger(log.With("component", "xds")), xds.WithDebounce(cfg.Debounce))
	grpcServer := newGRPCServer()
	x.Register(grpcServer)

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
		Handler:           debug.NewHandler(x, counters{&registryErrors}, log),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Info("weft-control-plane listening", "xds", xdsLis.Addr().String(), "debug", debugLis.Addr().String(),
		"registry", cfg.Registry, "file", cfg.File)
	if listening != nil {
		listening(xdsLis.Addr(), debugLis.Addr())
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return src.Run(ctx, x.Update) })
	g.Go(func() error { return x.Run(ctx) })
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

// newGRPCServer builds the gRPC server of the xDS port. It is the one place
// where transport credentials (mTLS on the xDS channel) will be added.
func newGRPCServer() *grpc.Server {
	return grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(10000),
	)
}

func newSource(cfg Config, log *slog.Logger, errs *atomic.Uint64) (registry.Source, error) {
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
