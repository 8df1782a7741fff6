package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/weftmesh/weft/api/egress"
)

// Resolver finds a host's addresses (net.Resolver has this method).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Static answers from a fixed map (--resolve host=ip) and asks Next for
// other names (nil: net.DefaultResolver).
type Static struct {
	Hosts map[string][]netip.Addr
	Next  Resolver
}

var _ Resolver = (*Static)(nil)

// LookupNetIP implements Resolver.
func (s *Static) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := s.Hosts[egress.NormalizeHost(host)]; ok {
		return a, nil
	}
	next := s.Next
	if next == nil {
		next = net.DefaultResolver
	}
	return next.LookupNetIP(ctx, network, host)
}

// ParseResolve reads one --resolve value, host=ip[,ip...], into m.
func ParseResolve(m map[string][]netip.Addr, v string) error {
	host, ips, ok := strings.Cut(v, "=")
	if !ok || host == "" || ips == "" {
		return fmt.Errorf("gateway: --resolve %q is not host=ip[,ip]", v)
	}
	if err := egress.ValidHost(host); err != nil || strings.HasPrefix(host, "*") {
		return fmt.Errorf("gateway: --resolve %q: bad host", v)
	}
	for _, s := range strings.Split(ips, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("gateway: --resolve %q: %w", v, err)
		}
		m[egress.NormalizeHost(host)] = append(m[egress.NormalizeHost(host)], a)
	}
	return nil
}
