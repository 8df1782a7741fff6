package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
)

// Chain names written by Render.
const (
	ChainInbound    = "WEFT_INBOUND"
	ChainInRedirect = "WEFT_IN_REDIRECT"
	ChainOutput     = "WEFT_OUTPUT"
	ChainRedirect   = "WEFT_REDIRECT"
	ChainDNS        = "WEFT_DNS"
)

// Config is what `weft-sidecar init` captures. Port lists hold numbers;
// AllPorts in an include list means every port.
type Config struct {
	ProxyUID     uint32
	InboundPort  uint16
	OutboundPort uint16
	// IncludeInboundPorts: nil or ["*"] = every port.
	IncludeInboundPorts []string
	ExcludeInboundPorts []uint16
	// IncludeOutboundPorts: nil or ["*"] = every port.
	IncludeOutboundPorts []string
	ExcludeOutboundPorts []uint16
	ExcludeOutboundCIDRs []netip.Prefix
	// CaptureDNS redirects the app's DNS (UDP and TCP port 53, from any
	// uid but ProxyUID) to DNSPort on 127.0.0.1, the sidecar's DNS proxy.
	CaptureDNS bool
	DNSPort    uint16
}

// AllPorts in an include list means every port.
const AllPorts = "*"

// DefaultConfig is the capture with no annotation: everything, the mesh
// ports and uid.
func DefaultConfig() Config {
	return Config{ProxyUID: mesh.ProxyUID, InboundPort: mesh.PortInbound, OutboundPort: mesh.PortOutbound, DNSPort: mesh.PortDNSProxy}
}

func all(list []string) bool { return len(list) == 0 || slices.Contains(list, AllPorts) }

func ports(list []string) ([]uint16, error) {
	out := make([]uint16, 0, len(list))
	for _, s := range list {
		p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("port %q is not 1..65535", s)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// Render returns the nat-table rules as iptables-restore input (to be
// restored with --noflush). It is a pure function of cfg.
func Render(cfg Config) (string, error) {
	if cfg.InboundPort == 0 || cfg.OutboundPort == 0 {
		return "", errors.New("capture: inbound and outbound ports are required")
	}
	if cfg.CaptureDNS && cfg.DNSPort == 0 {
		return "", errors.New("capture: DNS capture needs the DNS proxy's port")
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*nat")
	chains := []string{ChainInbound, ChainInRedirect, ChainOutput, ChainRedirect}
	if cfg.CaptureDNS {
		chains = append(chains, ChainDNS)
	}
	for _, c := range chains {
		w(":%s - [0:0]", c)
	}
	w("-A PREROUTING -p tcp -j %s", ChainInbound)
	w("-A OUTPUT -p tcp -j %s", ChainOutput)
	if cfg.CaptureDNS {
		// The jump has no --dport: iptables-save writes "-m udp --dport",
		// which dedupe would not recognise on a re-run.
		w("-A OUTPUT -p udp -j %s", ChainDNS)
	}

	// Inbound.
	excl := []uint16{mesh.PortHealth, mesh.PortAdmin, cfg.InboundPort}
	excl = append(excl, cfg.ExcludeInboundPorts...)
	slices.Sort(excl)
	excl = slices.Compact(excl)
	for _, p := range excl {
		w("-A %s -p tcp --dport %d -j RETURN", ChainInbound, p)
	}
	if all(cfg.IncludeInboundPorts) {
		w("-A %s -p tcp -j %s", ChainInbound, ChainInRedirect)
	} else {
		inc, err := ports(cfg.IncludeInboundPorts)
		if err != nil {
			return "", fmt.Errorf("capture: include inbound ports: %w", err)
		}
		for _, p := range inc {
			w("-A %s -p tcp --dport %d -j %s", ChainInbound, p, ChainInRedirect)
		}
	}
	w("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInRedirect, cfg.InboundPort)

	// Outbound.
	uid := cfg.ProxyUID
	if cfg.CaptureDNS {
		// DNS over TCP first, before the loopback and uid exceptions, so
		// it goes to the DNS proxy and not to the outbound listener.
		w("-A %s -p tcp --dport 53 -j %s", ChainOutput, ChainDNS)
	}
	// Unlike Istio, the proxy's own traffic to its pod IP over lo is never
	// sent back to the inbound: it is either the tunnel (already to the
	// inbound port) or the inbound delivering to the app at <pod ip>:<port>,
	// which redirecting would loop.
	w("-A %s -o lo -m owner ! --uid-owner %d -j RETURN", ChainOutput, uid)
	w("-A %s -m owner --uid-owner %d -j RETURN", ChainOutput, uid)
	w("-A %s -d 127.0.0.1/32 -j RETURN", ChainOutput)
	cidrs := slices.Clone(cfg.ExcludeOutboundCIDRs)
	slices.SortFunc(cidrs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	for _, c := range cidrs {
		if !c.Addr().Is4() {
			continue // IPv4 table; IPv6 is not captured yet.
		}
		w("-A %s -d %s -j RETURN", ChainOutput, c.Masked())
	}
	eo := slices.Clone(cfg.ExcludeOutboundPorts)
	slices.Sort(eo)
	for _, p := range slices.Compact(eo) {
		w("-A %s -p tcp --dport %d -j RETURN", ChainOutput, p)
	}
	if all(cfg.IncludeOutboundPorts) {
		w("-A %s -j %s", ChainOutput, ChainRedirect)
	} else {
		inc, err := ports(cfg.IncludeOutboundPorts)
		if err != nil {
			return "", fmt.Errorf("capture: include outbound ports: %w", err)
		}
		for _, p := range inc {
			w("-A %s -p tcp --dport %d -j %s", ChainOutput, p, ChainRedirect)
		}
	}
	w("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, cfg.OutboundPort)

	if cfg.CaptureDNS {
		// The proxy's own queries to the upstream resolvers leave as they
		// are; every other uid's port 53 goes to the DNS proxy.
		w("-A %s -m owner --uid-owner %d -j RETURN", ChainDNS, uid)
		w("-A %s -p udp --dport 53 -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
		w("-A %s -p tcp --dport 53 -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
	}
	w("COMMIT")
	return b.String(), nil
}

// dedupe drops from rendered the jump rules into WEFT_ chains from the
// built-in chains that saved (iptables-save output) already has, so a
// --noflush restore does not add them twice.
func dedupe(rendered, saved string) string {
	have := map[string]bool{}
	for l := range strings.SplitSeq(saved, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var b strings.Builder
	for l := range strings.SplitSeq(rendered, "\n") {
		if (strings.HasPrefix(l, "-A PREROUTING ") || strings.HasPrefix(l, "-A OUTPUT ")) && have[l] {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}
