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

	Paths  []string // of "A", "B", "W"
	Sizes  []string // workloads: "1k", "64k" (HTTP/1.1), "h2-1k" (HTTP/2), "grpc" (gRPC unary)
	QPS    []int    // constant rates for the latency runs
	Rounds int
	LatDur time.Duration
	// HeadLatDur is the duration of the constant-rate runs of the summary's
	// row (the first workload at the first rate: issue 11's latency target),
	// longer than LatDur so that its verdict is resolved; 0: LatDur.
	HeadLatDur time.Duration
	SatDur     time.Duration
	Warmup     time.Duration
	LatConns   int
	SatConns   int

	// LoadCPU runs the load generator, ServerCPU the upstream, every proxy
	// and the control plane; -1 for either leaves it unpinned.
	LoadCPU   int
	ServerCPU int

	// SidecarEnv is added to the Weft sidecars' environment only
	// (KEY=value; GOGC, GOMEMLIMIT or GODEBUG=gctrace=1 experiments).
	SidecarEnv []string

	// SidecarArgs are added to both Weft sidecars' command lines
	// (e.g. --trim-interval=0 to measure without the periodic drop).
	SidecarArgs []string
}

// DefaultConfig is `make bench`: about fifteen minutes of measurement
// (4 workloads × 3 paths × (2 rates + saturation) × 2 rounds; 9.5 minutes
// with every latency run 8 s long), of which 5 go to the summary's row: 60 s
// runs, 120,000 requests a path, about what resolving a 10 % difference in
// added p99 needs (the W − B interval's half-width shrinks as 1/√N: 19 % of
// B's added p99 from 16,000 requests a path at D = 1 on this machine, so
// 57,000 at D = 1 and 114,000 at D = 2).
func DefaultConfig() Config {
	return Config{
		BinDir:     "bin",
		RunDir:     ".cache/bench",
		OutFile:    "BENCHMARKS.md",
		Fortio:     "fortio",
		Wrk:        "wrk",
		Paths:      []string{"A", "B", "W"},
		Sizes:      []string{"1k", "64k", "h2-1k", "grpc"},
		QPS:        []int{1000, 5000},
		Rounds:     2,
		LatDur:     8 * time.Second,
		HeadLatDur: 60 * time.Second,
		SatDur:     5 * time.Second,
		Warmup:     2 * time.Second,
		LatConns:   16,
		SatConns:   32,
		LoadCPU:    0,
		ServerCPU:  1,
	}
}

// latDur is the duration of the constant-rate runs of size at qps.
func (c Config) latDur(size string, qps int) time.Duration {
	if c.HeadLatDur > 0 && size == c.Sizes[0] && qps == c.QPS[0] {
		return c.HeadLatDur
	}
	return c.LatDur
}

// Validate checks the knobs.
func (c Config) Validate() error {
	if c.Rounds < 1 || c.LatDur < time.Second || (c.HeadLatDur != 0 && c.HeadLatDur < time.Second) || c.SatDur < time.Second || c.LatConns < 1 || c.SatConns < 1 {
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
			return fmt.Errorf("datapath: unknown workload %q (1k, 64k, h2-1k, grpc)", s)
		}
	}
	if len(c.Sizes) == 0 || len(c.QPS) == 0 {
		return fmt.Errorf("datapath: need at least one size and one rate")
	}
	return nil
}

// sizeBytes maps a workload to its response body length; bench-upstream
// serves it at /<size> (h2-1k: /1k over HTTP/2; grpc: a health check).
var sizeBytes = map[string]int{"1k": 1 << 10, "64k": 64 << 10, "h2-1k": 1 << 10, "grpc": 0}

// Protocols of the load generator's leg, by workload.
const (
	protoHTTP1 = ""
	protoH2    = "h2"   // HTTP/2 with prior knowledge (h2c)
	protoGRPC  = "grpc" // gRPC unary over h2c
)

// workloadProto is the protocol a workload speaks to the first hop.
func workloadProto(size string) string {
	switch size {
	case "h2-1k":
		return protoH2
	case "grpc":
		return protoGRPC
	}
	return protoHTTP1
}

// workloadPath is the URL path of a workload's requests.
func workloadPath(size string) string {
	if size == "h2-1k" {
		return "/1k"
	}
	return "/" + size
}

// workloadLabel names a workload in the report's headings.
func workloadLabel(size string) string {
	switch workloadProto(size) {
	case protoH2:
		return "HTTP/2 (h2c from the load generator), 1k bodies"
	case protoGRPC:
		return "gRPC unary (grpc.health.v1 Check, h2c from the load generator)"
	}
	return "HTTP/1.1, " + size + " bodies"
}

var pathDescriptions = map[string]string{
	"A": "direct: load generator -> upstream",
	"B": "nginx pair: -> nginx (plain HTTP/1.1; h2c on its own ports for HTTP/2 and gRPC) -> TLS 1.3 mTLS, HTTP/1.1 (gRPC: h2) -> nginx -> upstream",
	"W": "Weft pair: -> client sidecar :15001 (HTTP proxy; h2c for HTTP/2 and gRPC) -> server sidecar :15006 -> upstream",
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
	nginxH2Port    = 8081 // h2c in, same HTTP/1.1-over-TLS hop
	nginxGRPCPort  = 8082 // h2c in, gRPC over TLS (h2) on the hop
	nginxTLSPort   = 8443
	nginxGRPCTLS   = 8444
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
			addrs = append(addrs, hostPort(nginxClientIP, nginxPort), hostPort(nginxClientIP, nginxH2Port), hostPort(nginxClientIP, nginxGRPCPort),
				hostPort(nginxServerIP, nginxTLSPort), hostPort(nginxServerIP, nginxGRPCTLS))
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
