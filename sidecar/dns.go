package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/dnsproxy"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// DefaultDNSAddress is where the DNS proxy listens in a pod: the target of
// `weft-sidecar init --capture-dns`'s REDIRECT (nat OUTPUT goes to
// 127.0.0.1).
var DefaultDNSAddress = net.JoinHostPort("127.0.0.1", strconv.Itoa(mesh.PortDNSProxy))

// dnsServer is the sidecar's DNS proxy with its sockets, opened before the
// run starts so a port clash fails the start.
type dnsServer struct {
	srv *dnsproxy.Server
	pc  net.PacketConn
	ln  net.Listener
	ns  string
	log *slog.Logger
}

// newDNSServer opens cfg.DNSAddress and reads the upstream resolvers from
// cfg.ResolvConf; nil when the DNS proxy is off.
func newDNSServer(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*dnsServer, error) {
	if !cfg.DNSProxy {
		return nil, nil
	}
	ups, err := dnsproxy.ReadResolvConf(cfg.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("sidecar: dns proxy: %w", err)
	}
	addr := cfg.DNSAddress
	if addr == "" {
		addr = DefaultDNSAddress
	}
	pc, ln, err := dnsproxy.Listen(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	log = log.With("component", "dns")
	if len(ups) == 0 {
		// Every name outside the mesh will get SERVFAIL.
		log.Warn("dns proxy: no nameserver in resolv.conf; only mesh names resolve", "resolv_conf", cfg.ResolvConf)
	}
	log.Info("dns proxy listening", "address", addr, "upstreams", ups)
	return &dnsServer{
		srv: dnsproxy.New(dnsproxy.Upstreams{Addrs: ups}, dnsproxy.WithLogger(log), dnsproxy.WithRegisterer(reg)),
		pc:  pc, ln: ln, ns: cfg.Namespace, log: log,
	}, nil
}

// dnsServices reads the DNS names out of a snapshot's service clusters; an
// error makes the snapshot invalid (NACKed by the validator).
func dnsServices(s *xdsclient.Snapshot) ([]dnsproxy.Service, error) {
	var out []dnsproxy.Service
	for _, c := range s.Clusters {
		svc, ok, err := dnsproxy.ServiceOf(c.Name, c.ServiceHost, c.ServiceAddresses)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, svc)
		}
	}
	return out, nil
}

// update installs the names of snapshot s's service clusters (which the
// validator already checked).
func (d *dnsServer) update(s *xdsclient.Snapshot) {
	if d == nil {
		return
	}
	svcs, err := dnsServices(s)
	if err != nil {
		d.log.Warn("dns table not updated", "error", err)
		return
	}
	t := dnsproxy.NewTable(d.ns, svcs)
	d.srv.SetTable(t)
	d.log.Debug("dns table updated", "names", t.Len())
}

// serve runs until ctx is done.
func (d *dnsServer) serve(ctx context.Context) error {
	return d.srv.Serve(ctx, d.pc, d.ln)
}

// close releases the sockets of a server that never served.
func (d *dnsServer) close() {
	if d != nil {
		_ = d.pc.Close()
		_ = d.ln.Close()
	}
}
