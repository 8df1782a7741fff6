package sidecar

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/capture"
	"github.com/weftmesh/weft/sidecar/probe"
)

// captureSpecs adapts the listeners to pod mode (cfg.Capture): the
// outbound binds every address on its port, both record each connection's
// original destination (capture.Listener) in the request context.
func captureSpecs(cfg Config, specs map[string]serverSpec) map[string]serverSpec {
	if !cfg.Capture {
		return specs
	}
	out := make(map[string]serverSpec, len(specs))
	for name, s := range specs {
		inner, wrap := s.newServer, s.wrap
		s.newServer = func() server {
			srv := inner()
			cfg := httpConfig(srv)
			prev := cfg.ConnContext
			cfg.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
				if prev != nil {
					ctx = prev(ctx, c)
				}
				return capture.SniffContext(capture.ConnContext(ctx, c), c)
			}
			return srv
		}
		sniff := name == mesh.ListenerOutbound
		s.wrap = func(ln net.Listener, srv server) net.Listener {
			var l net.Listener = capture.Listener{Listener: ln}
			if sniff {
				// Raw TCP becomes a synthetic CONNECT (capture.SniffListener).
				l = capture.SniffListener{Listener: l}
			}
			if wrap != nil {
				l = wrap(l, srv)
			}
			return l
		}
		if name == mesh.ListenerOutbound {
			s.bind = func(addr string) string {
				if _, port, err := net.SplitHostPort(addr); err == nil {
					return net.JoinHostPort("", port)
				}
				return addr
			}
		}
		out[name] = s
	}
	return out
}

// srcAddr is the address outbound dials leave from in local mode (the
// workload's own loopback address); none in pod mode.
func srcAddr(cfg Config) netip.Addr {
	if cfg.Capture {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(cfg.IP)
	if err != nil || !a.IsLoopback() {
		return netip.Addr{}
	}
	return a
}

// appHealth serves the app's rewritten probes (mesh.AppProbePathPrefix)
// on the health port beside h.
func appHealth(cfg Config, h http.Handler, log *slog.Logger) http.Handler {
	if cfg.AppProbes == "" {
		return h
	}
	p, err := probe.New(cfg.AppProbes, probe.WithLogger(log))
	if err != nil {
		log.Error("app probes ignored", "env", mesh.EnvAppProbes, "error", err)
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(mesh.AppProbePathPrefix, p)
	mux.Handle("/", h)
	return mux
}
