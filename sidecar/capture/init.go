package capture

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
)

// InitOptions is `weft-sidecar init`: the capture config, the backend
// ("auto", "nft", "legacy", "default") and whether to only print.
type InitOptions struct {
	Config  Config
	Backend string
	DryRun  bool
}

func flagName(f string) string { return strings.TrimPrefix(f, "--") }

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func portList(v string) ([]uint16, error) {
	var out []uint16
	for _, s := range splitList(v) {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("port %q is not 1..65535", s)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// ParseInitFlags reads the flags of `weft-sidecar init` (mesh.InitFlag*).
func ParseInitFlags(args []string, stderr io.Writer) (InitOptions, error) {
	o := InitOptions{Config: DefaultConfig(), Backend: "auto"}
	fs := flag.NewFlagSet("weft-sidecar init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	uid := fs.Uint(flagName(mesh.InitFlagProxyUID), mesh.ProxyUID, "uid of the proxy; its traffic is not captured")
	in := fs.Uint(flagName(mesh.InitFlagInboundPort), mesh.PortInbound, "port inbound TCP is redirected to")
	out := fs.Uint(flagName(mesh.InitFlagOutboundPort), mesh.PortOutbound, "port outbound TCP is redirected to")
	incIn := fs.String(flagName(mesh.InitFlagIncludeInboundPorts), AllPorts, "inbound ports to capture (comma-separated, * = all)")
	excIn := fs.String(flagName(mesh.InitFlagExcludeInboundPorts), "", "inbound ports not to capture")
	incOut := fs.String(flagName(mesh.InitFlagIncludeOutboundPorts), AllPorts, "outbound ports to capture (* = all)")
	excOut := fs.String(flagName(mesh.InitFlagExcludeOutboundPorts), "", "outbound ports not to capture")
	excCIDR := fs.String(flagName(mesh.InitFlagExcludeOutboundCIDRs), "", "outbound destinations (CIDRs) not to capture")
	fs.BoolVar(&o.Config.CaptureDNS, flagName(mesh.InitFlagCaptureDNS), false, "redirect the app's DNS (UDP and TCP port 53) to the sidecar's DNS proxy")
	dnsPort := fs.Uint(flagName(mesh.InitFlagDNSPort), mesh.PortDNSProxy, "port of the sidecar's DNS proxy on 127.0.0.1")
	fs.StringVar(&o.Backend, "iptables-backend", "auto", "auto (detect as Istio does), nft, legacy or default (iptables-restore)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the iptables-restore input and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("init: unexpected arguments %q", fs.Args())
	}
	if *in == 0 || *in > 65535 || *out == 0 || *out > 65535 || *dnsPort == 0 || *dnsPort > 65535 || *uid > 1<<31 {
		return o, fmt.Errorf("init: bad port or uid")
	}
	o.Config.DNSPort = uint16(*dnsPort)
	o.Config.ProxyUID, o.Config.InboundPort, o.Config.OutboundPort = uint32(*uid), uint16(*in), uint16(*out)
	o.Config.IncludeInboundPorts = splitList(*incIn)
	o.Config.IncludeOutboundPorts = splitList(*incOut)
	var err error
	if o.Config.ExcludeInboundPorts, err = portList(*excIn); err != nil {
		return o, fmt.Errorf("init: %s: %w", mesh.InitFlagExcludeInboundPorts, err)
	}
	if o.Config.ExcludeOutboundPorts, err = portList(*excOut); err != nil {
		return o, fmt.Errorf("init: %s: %w", mesh.InitFlagExcludeOutboundPorts, err)
	}
	for _, s := range splitList(*excCIDR) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return o, fmt.Errorf("init: %s: %w", mesh.InitFlagExcludeOutboundCIDRs, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		o.Config.ExcludeOutboundCIDRs = append(o.Config.ExcludeOutboundCIDRs, p)
	}
	if _, err := Render(o.Config); err != nil {
		return o, fmt.Errorf("init: %w", err)
	}
	return o, nil
}

// RunInit is `weft-sidecar init`: it writes the capture rules into the
// current network namespace (or prints them with --dry-run).
func RunInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := ParseInitFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.DryRun {
		rules, err := Render(o.Config)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, rules)
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := DetectBackend(ctx, o.Backend, ExecRunner, exec.LookPath)
	if err != nil {
		return err
	}
	return Apply(ctx, o.Config, b, ExecRunner, log)
}
