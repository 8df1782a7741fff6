// Command weft-sidecar is the Weft data plane proxy. It takes its
// configuration from the control plane over xDS; see package sidecar.
//
// Memory: in a container with a memory limit (cgroup v2 memory.max) and no
// GOMEMLIMIT in the environment, 75 % of the limit becomes the Go runtime's
// soft memory limit, so the GC works harder near the limit instead of the
// kernel killing the proxy (memlimit.go). Once the first configuration
// is applied, the executable pages only starting up used are dropped
// (--trim-after-start, package sidecar/internal/memtrim).
//
// GC policy (gcpolicy.go): unless GOGC is set in the environment, the heap
// may grow 1.5 MiB above what the last cycle left live before the next cycle
// starts, instead of Go's default of the live heap itself (GOGC=100), ~3
// MB in a sidecar at load. After each cycle GOGC is set to what gives that
// headroom (between 50 and 800; a 6 MB heap before the first cycle, so
// start-up is not collected before the sidecar is ready). The trade: each
// cycle is a mark phase of a few milliseconds on the sidecar's one P that
// delays the requests arriving during it (the tail of the pair's latency,
// BENCHMARKS.md), and the headroom over the bytes a request allocates
// sets how often one runs: at ~0.5 KB per request, one every ~3 s at 1000
// requests/s, less often than 4 MiB did when requests allocated ~2.3 KB,
// for 2.5 MiB less heap (the RSS target is 20 MB per sidecar). Once the
// live heap passes twice the headroom (a large mesh's configuration) it
// may grow by the live heap less the headroom, tending to Go's default,
// so memory never grows by a multiple; the soft memory limit still caps
// the heap either way. GOGC and GOMEMLIMIT in the environment win.
//
// Heap profiling is off (runtime.MemProfileRate 0, memprofile.go) unless
// GODEBUG sets memprofilerate: the profiler's hash table became resident
// under load. GODEBUG=memprofilerate=524288 (Go's default) turns it on for
// the admin port's /debug/pprof/heap.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar"
	"github.com/weftmesh/weft/sidecar/capture"
	"github.com/weftmesh/weft/sidecar/dnsproxy"
	"github.com/weftmesh/weft/sidecar/gateway"
)

func main() {
	if !setsMemProfileRate(os.Getenv("GODEBUG")) {
		runtime.MemProfileRate = heapProfileRate
	}
	if len(os.Args) > 1 && os.Args[1] == mesh.SidecarInitCommand {
		// `weft-sidecar init`: write the capture rules and exit.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := capture.RunInit(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			fmt.Fprintln(os.Stderr, "weft-sidecar init:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "weft-sidecar:", err)
		os.Exit(2)
	}
	if soft := applyMemoryLimit(); soft > 0 {
		cfg.Logger.Info("Go soft memory limit from the container's", "percent", memLimitPercent, "bytes", soft)
	}
	if gp := startGCPolicy(os.Getenv("GOGC"), gcHeadroom); gp != nil {
		defer gp.Stop()
		cfg.Logger.Info("GC policy: the heap may grow this much above the live heap before a cycle (GOGC unset)", "headroom_bytes", gcHeadroom, "gogc", gp.Percent())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sidecar.Run(ctx, cfg); err != nil {
		cfg.Logger.Error("weft-sidecar failed", "error", err)
		stop()
		os.Exit(1)
	}
}

func flagName(f string) string { return strings.TrimPrefix(f, "--") }

// parseFlags reads the command line into a sidecar.Config with its logger.
func parseFlags(args []string, stderr io.Writer) (sidecar.Config, error) {
	var cfg sidecar.Config
	fs := flag.NewFlagSet("weft-sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Workload, "workload", "", "workload name (required)")
	fs.StringVar(&cfg.Namespace, "namespace", "", "workload namespace (required)")
	fs.StringVar(&cfg.ServiceAccount, "service-account", "default", "workload service account")
	fs.StringVar(&cfg.IP, "ip", "", "workload address; listeners, admin and health bind on it (required)")
	fs.StringVar(&cfg.XDSAddress, "xds-address", sidecar.DefaultXDSAddress, "control plane xDS address, host:port")
	fs.StringVar(&cfg.AdminAddress, "admin-address", "", "admin address (default <ip>:15000)")
	fs.StringVar(&cfg.HealthAddress, "health-address", "", "health address (default <ip>:15020)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", sidecar.DefaultDrainTimeout, "how long shutdown waits for in-flight requests")
	fs.StringVar(&cfg.CABundle, "ca-bundle", "", "trust bundle (PEM roots) that verifies the control plane (required unless --xds-plaintext)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the credential sent as a bearer token to the control plane; re-read at each use (required unless --xds-plaintext)")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", mesh.DefaultTrustDomain, "SPIFFE trust domain of the mesh")
	fs.BoolVar(&cfg.Plaintext, "xds-plaintext", false, "run without identity: plaintext xDS, no certificates, h2c tunnels only (tests and bring-up)")
	fs.StringVar(&cfg.Mode, "mode", mesh.ModeSidecar, "what to run: "+mesh.ModeSidecar+" or "+mesh.ModeEgressGateway+" (the inbound listener serves the egress gateway)")
	resolve := map[string][]netip.Addr{}
	fs.Func("resolve", "egress-gateway mode: host=ip[,ip] answers the gateway's own DNS lookups for host (repeatable; other names use the system resolver)", func(v string) error {
		return gateway.ParseResolve(resolve, v)
	})
	fs.BoolVar(&cfg.Capture, "capture", false, "pod mode: traffic arrives redirected by `weft-sidecar init` rules; the outbound listener binds 0.0.0.0:<port> and both listeners use the original destination")
	fs.StringVar(&cfg.AppProbes, "app-probes", os.Getenv(mesh.EnvAppProbes), "the app's original HTTP probes as JSON (default $"+mesh.EnvAppProbes+"), answered on the health port under "+mesh.AppProbePathPrefix)
	fs.BoolVar(&cfg.DNSProxy, flagName(mesh.SidecarFlagDNSProxy), false, "run the DNS proxy: A/AAAA for mesh services from the xDS config, other queries forwarded to the nameservers of --resolv-conf")
	fs.StringVar(&cfg.DNSAddress, "dns-address", sidecar.DefaultDNSAddress, "DNS proxy address (UDP and TCP), with --dns-proxy")
	fs.StringVar(&cfg.ResolvConf, "resolv-conf", dnsproxy.DefaultResolvConf, "resolv.conf whose nameservers the DNS proxy forwards to")
	fs.BoolVar(&cfg.TrimAfterStart, "trim-after-start", true, "once the first configuration is applied, drop the executable pages only starting up used (idle RSS; package sidecar/internal/memtrim)")
	fs.DurationVar(&cfg.TrimInterval, "trim-interval", sidecar.DefaultTrimInterval, "with --trim-after-start, drop the executable pages again this often (0: only once), so that those the sidecar keeps mapped are what it ran lately (RSS under load; package sidecar/internal/memtrim)")
	fs.BoolVar(&cfg.ReleaseHeap, "release-heap", true, "once the load drops after a burst, return the heap it left behind to the OS (RSS after load; package sidecar/internal/heaprelease)")
	fs.StringVar(&cfg.HTTP2Server, "http2-server", sidecar.HTTP2ServerWeft, "what serves the listeners' HTTP/2: "+sidecar.HTTP2ServerWeft+" (package sidecar/h2server) or "+sidecar.HTTP2ServerNetHTTP+" (net/http's HTTP/2 server)")
	rawIO := fs.Bool("raw-socket-io", true, "read and write the data-path sockets with raw system calls, which do not wake the Go runtime's sysmon thread per request (package sidecar/internal/rawtcp); false: the net package's")
	fs.StringVar(&cfg.HTTP2Client, "http2-client", sidecar.HTTP2ClientWeft, "what carries the sidecar's HTTP/2 hops (the tunnel, h2c to a gRPC app): "+sidecar.HTTP2ClientWeft+" (package sidecar/h2client) or "+sidecar.HTTP2ClientNetHTTP+" (net/http's HTTP/2 transport)")
	fs.DurationVar(&cfg.HTTP2WriteTimeout, "http2-write-timeout", sidecar.DefaultHTTP2WriteTimeout, "bound of each socket write to an HTTP/2 connection (package sidecar/h2server's and sidecar/h2client's): a peer that does not take a write within it fails the connection; negative: no bound")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.NetSocketIO = !*rawIO
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(resolve) > 0 {
		if cfg.Mode != mesh.ModeEgressGateway {
			return cfg, fmt.Errorf("--resolve is for --mode=%s", mesh.ModeEgressGateway)
		}
		cfg.GatewayOptions = append(cfg.GatewayOptions, gateway.WithResolver(&gateway.Static{Hosts: resolve}))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	return cfg, nil
}
