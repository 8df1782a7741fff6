package datapath

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// Config is one run of the data-path benchmark.
type Config struct {
	BinDir      string // bench-upstream, weft-control-plane, weft-sidecar
	RunDir      string // certificates, configs, logs, raw load-generator output
	OutFile     string // BENCHMARKS.md: the generated section is replaced
	GoBenchFile string // output of the Go benchmarks, embedded in OutFile when present
	Fortio      string // fortio binary
	Wrk         string // wrk binary
	Command     string // the command line to print with the results

	Paths    []string // of "A", "B", "W"
	Sizes    []string // of "1k", "64k"
	QPS      []int    // constant rates for the latency runs
	Rounds   int
	LatDur   time.Duration
	SatDur   time.Duration
	Warmup   time.Duration
	LatConns int
	SatConns int

	// LoadCPU runs the load generator, ServerCPU the upstream, every proxy
	// and the control plane; -1 for either leaves it unpinned.
	LoadCPU   int
	ServerCPU int
}

// DefaultConfig is `make bench`: about six minutes of measurement.
func DefaultConfig() Config {
	return Config{
		BinDir:    "bin",
		RunDir:    ".cache/bench",
		OutFile:   "BENCHMARKS.md",
		Fortio:    "fortio",
		Wrk:       "wrk",
		Paths:     []string{"A", "B", "W"},
		Sizes:     []string{"1k", "64k"},
		QPS:       []int{1000},
		Rounds:    3,
		LatDur:    10 * time.Second,
		SatDur:    5 * time.Second,
		Warmup:    2 * time.Second,
		LatConns:  16,
		SatConns:  32,
		LoadCPU:   0,
		ServerCPU: 1,
	}
}

// Validate checks the knobs.
func (c Config) Validate() error {
	if c.Rounds < 1 || c.LatDur < time.Second || c.SatDur < time.Second || c.LatConns < 1 || c.SatConns < 1 {
		return fmt.Errorf("datapath: rounds, durations (>= 1s) and connections must be positive")
	}
	for _, p := range c.Paths {
		if _, ok := pathDescriptions[p]; !ok {
			return fmt.Errorf("datapath: unknown path %q (A, B, W)", p)
		}
	}
	if len(c.Paths) == 0 || c.Paths[0] != "A" {
		return fmt.Errorf("datapath: paths must start with A (direct): added latency is measured against it")
	}
	for _, s := range c.Sizes {
		if _, ok := sizeBytes[s]; !ok {
			return fmt.Errorf("datapath: unknown size %q (1k, 64k)", s)
		}
	}
	if len(c.Sizes) == 0 || len(c.QPS) == 0 {
		return fmt.Errorf("datapath: need at least one size and one rate")
	}
	return nil
}

// sizeBytes maps a body size to its length; bench-upstream serves it at /<size>.
var sizeBytes = map[string]int{"1k": 1 << 10, "64k": 64 << 10}

var pathDescriptions = map[string]string{
	"A": "direct: load generator -> upstream",
	"B": "nginx pair: -> nginx (plain HTTP/1.1) -> TLS 1.3 mTLS, HTTP/1.1 -> nginx -> upstream",
	"W": "Weft pair: -> client sidecar :15001 (HTTP proxy) -> server sidecar :15006 -> upstream",
}

// Loopback addresses of the benchmark (127.0.90.0/24: clear of the
// 127.100+ range that tests pick at random and of the demo's addresses).
// The upstream's address is also the Weft server workload's: in local mode a
// sidecar forwards inbound traffic to its own workload's address.
const (
	upstreamIP     = "127.0.90.10"
	upstreamPort   = 8080
	nginxClientIP  = "127.0.90.21"
	nginxServerIP  = "127.0.90.22"
	nginxPort      = 8080
	nginxTLSPort   = 8443
	controlPlaneIP = "127.0.90.1"
	weftClientIP   = "127.0.90.31"
	benchNamespace = "bench"
	upstreamName   = "upstream"
	clientName     = "client"
)

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// upstreamAddr is the upstream app (and Weft server workload) address.
func upstreamAddr() string { return hostPort(upstreamIP, upstreamPort) }

// weftServiceHost is the Host the Weft client sends: the upstream service's
// FQDN with its port.
func weftServiceHost() string {
	return hostPort(mesh.ServiceHost(upstreamName, benchNamespace, mesh.DefaultClusterDomain), upstreamPort)
}

// addressesInUse lists the benchmark's listen addresses that are taken.
func addressesInUse(ctx context.Context, paths []string) []string {
	addrs := []string{upstreamAddr()}
	for _, p := range paths {
		switch p {
		case "B":
			addrs = append(addrs, hostPort(nginxClientIP, nginxPort), hostPort(nginxServerIP, nginxTLSPort))
		case "W":
			addrs = append(addrs,
				hostPort(controlPlaneIP, mesh.PortXDS), hostPort(controlPlaneIP, mesh.PortDebug),
				hostPort(weftClientIP, mesh.PortOutbound), hostPort(weftClientIP, mesh.PortAdmin),
				hostPort(upstreamIP, mesh.PortInbound), hostPort(upstreamIP, mesh.PortAdmin))
		}
	}
	var busy []string
	for _, a := range addrs {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", a)
		if err != nil {
			busy = append(busy, a)
			continue
		}
		_ = ln.Close()
	}
	return busy
}
