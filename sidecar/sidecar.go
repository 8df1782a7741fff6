package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/admin"
	"github.com/weftmesh/weft/sidecar/inbound"
	"github.com/weftmesh/weft/sidecar/outbound"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/transport"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// DefaultDrainTimeout bounds how long shutdown waits for in-flight requests.
const DefaultDrainTimeout = 5 * time.Second

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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var errs []error
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

	var tables atomic.Pointer[router.Table]
	tr := transport.New()
	defer tr.CloseIdleConnections()
	lm := newListenerManager(log, cfg.DrainTimeout, &tables, map[string]func() *http.Server{
		mesh.ListenerOutbound: func() *http.Server {
			return outbound.NewServer(outbound.NewHandler(&tables, tr, log), log)
		},
		mesh.ListenerInbound: func() *http.Server {
			return inbound.NewServer(inbound.NewHandler(&tables, tr, log), log)
		},
	})

	// The validator compiles each candidate; the update handler installs
	// the table compiled for the snapshot it publishes. Both run on the
	// xDS client's goroutine.
	var compiled *router.Table
	xdsOpts := append([]xdsclient.Option{
		xdsclient.WithLogger(log),
		xdsclient.WithValidator(func(s *xdsclient.Snapshot) error {
			t, err := router.Compile(s, tables.Load())
			if err != nil {
				return err
			}
			compiled = t
			return nil
		}),
		xdsclient.WithUpdateHandler(func(s *xdsclient.Snapshot) {
			t := compiled
			if t == nil || t.Snapshot != s {
				var err error
				if t, err = router.Compile(s, tables.Load()); err != nil {
					// Cannot happen: s passed the validator.
					log.Error("published snapshot does not compile", "error", err)
					return
				}
			}
			tables.Store(t)
			lm.notify()
		}),
	}, cfg.XDSOptions...)
	xc, err := xdsclient.New(cfg.XDSAddress, xdsclient.Node{
		Workload: cfg.Workload, Namespace: cfg.Namespace, ServiceAccount: cfg.ServiceAccount, IP: cfg.IP,
	}, xdsOpts...)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}

	var draining atomic.Bool
	ready := func() bool { return !draining.Load() && lm.ready() }

	adminLn, err := net.Listen("tcp", cfg.AdminAddress)
	if err != nil {
		return fmt.Errorf("sidecar: admin: %w", err)
	}
	healthLn, err := net.Listen("tcp", cfg.HealthAddress)
	if err != nil {
		adminLn.Close()
		return fmt.Errorf("sidecar: health: %w", err)
	}
	adminSrv := admin.NewServer(admin.NewHandler(ready, xc, log), log)
	healthSrv := admin.NewServer(admin.NewHealthHandler(ready), log)

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
	g.Go(func() error { return lm.run(gctx) })
	for _, s := range []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{{"admin", adminSrv, adminLn}, {"health", healthSrv, healthLn}} {
		g.Go(func() error {
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
