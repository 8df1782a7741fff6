package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
)

// DefaultShutdownTimeout bounds the graceful stop of the server.
const DefaultShutdownTimeout = 5 * time.Second

// DefaultListenAddress is where the webhook listens: every address, port
// mesh.PortWebhook.
func DefaultListenAddress() string { return ":" + strconv.Itoa(mesh.PortWebhook) }

// Config is everything Run needs.
type Config struct {
	// ListenAddress, host:port (DefaultListenAddress when empty).
	ListenAddress string
	// CertFile and KeyFile hold the serving key pair (PEM); re-read when
	// they change.
	CertFile, KeyFile string
	Mesh              meshconfig.Config
	Template          inject.Template
	ShutdownTimeout   time.Duration
	Logger            *slog.Logger
	// Ready, when set, receives the bound address once the server listens
	// (tests use it with port 0).
	Ready func(addr net.Addr)
}

// Run serves the webhook until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = DefaultListenAddress()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := NewHandler(cfg.Mesh, cfg.Template, cfg.Logger)
	if err != nil {
		return err
	}
	certs, err := NewCertReloader(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(mesh.InjectorPath, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: certs.GetCertificate,
		},
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("webhook: listen: %w", err)
	}
	cfg.Logger.Info("weft-injector serving", "address", ln.Addr().String(), "path", mesh.InjectorPath)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("webhook: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("webhook: shutdown: %w", err)
		}
		return nil
	})
	return g.Wait()
}
