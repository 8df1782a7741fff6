// Command weft-bench runs the data-path benchmark (`make bench-data`):
// the same load generator and upstream, direct (A), through an nginx pair
// with mTLS between them (B) and through a Weft sidecar pair (W), and writes
// the comparison into BENCHMARKS.md. See package datapath.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/tests/bench/datapath"
)

func main() {
	cfg := datapath.DefaultConfig()
	var tools, paths, sizes, qps, sidecarEnv, sidecarArgs string
	flag.StringVar(&cfg.BinDir, "bin", cfg.BinDir, "directory with bench-upstream, weft-control-plane and weft-sidecar")
	flag.StringVar(&tools, "tools", ".cache/tools/bin", "directory with fortio (falls back to $PATH)")
	flag.StringVar(&cfg.RunDir, "run", cfg.RunDir, "scratch directory: certificates, configs, logs, raw results")
	flag.StringVar(&cfg.OutFile, "out", cfg.OutFile, "markdown file whose generated section receives the results (empty: none)")
	flag.StringVar(&cfg.GoBenchFile, "gobench", "", "output of the Go benchmarks to include in the results")
	flag.StringVar(&paths, "paths", strings.Join(cfg.Paths, ","), "paths to measure: A (direct, required), B (nginx pair), W (Weft pair)")
	flag.StringVar(&sizes, "sizes", strings.Join(cfg.Sizes, ","), "response bodies: 1k, 64k")
	flag.StringVar(&qps, "qps", joinInts(cfg.QPS), "constant rates of the latency runs, comma separated")
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds; latency percentiles pool every round's requests, the other figures are medians over rounds")
	flag.DurationVar(&cfg.LatDur, "lat-dur", cfg.LatDur, "duration of each constant-rate run")
	flag.DurationVar(&cfg.HeadLatDur, "head-lat-dur", cfg.HeadLatDur, "duration of each constant-rate run of the summary's row (first size at the first rate), whose added-p99 verdict needs the most requests; 0: -lat-dur")
	flag.DurationVar(&cfg.SatDur, "sat-dur", cfg.SatDur, "duration of each saturation run (whole seconds)")
	flag.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "warm-up per path and size (discarded)")
	flag.IntVar(&cfg.LatConns, "lat-conns", cfg.LatConns, "connections of the constant-rate runs")
	flag.IntVar(&cfg.SatConns, "sat-conns", cfg.SatConns, "connections of the saturation runs")
	flag.IntVar(&cfg.LoadCPU, "load-cpu", cfg.LoadCPU, "CPU for the load generator (-1: no pinning at all)")
	flag.IntVar(&cfg.ServerCPU, "server-cpu", cfg.ServerCPU, "CPU for the upstream, the proxies and the control plane")
	flag.StringVar(&sidecarEnv, "sidecar-env", "", "KEY=value entries, space separated, added to the Weft sidecars' environment only (e.g. 'GOGC=off GODEBUG=gctrace=1')")
	flag.StringVar(&sidecarArgs, "sidecar-args", "", "flags, space separated, added to both Weft sidecars' command lines (e.g. '--trim-interval=0')")
	flag.StringVar(&cfg.Command, "command", "", "the command to print with the results (default: this one)")
	flag.Parse()

	cfg.Paths = split(paths)
	cfg.Sizes = split(sizes)
	cfg.SidecarEnv = strings.Fields(sidecarEnv)
	cfg.SidecarArgs = strings.Fields(sidecarArgs)
	cfg.QPS = nil
	for _, q := range split(qps) {
		n, err := strconv.Atoi(q)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "weft-bench: bad -qps %q\n", q)
			os.Exit(2)
		}
		cfg.QPS = append(cfg.QPS, n)
	}
	if cfg.LoadCPU < 0 {
		cfg.ServerCPU = -1
	}
	cfg.Fortio = lookTool(tools, "fortio")
	cfg.Wrk = lookTool(tools, "wrk")
	if cfg.Command == "" {
		cfg.Command = filepath.Base(os.Args[0]) + " " + strings.Join(relArgs(os.Args[1:]), " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := datapath.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "weft-bench: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// lookTool prefers the project's tools directory, then $PATH.
func lookTool(dir, name string) string {
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	return name
}

// relArgs shortens absolute paths under the working directory, so the
// command printed in BENCHMARKS.md does not name this machine's checkout.
func relArgs(args []string) []string {
	wd, err := os.Getwd()
	if err != nil {
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, wd+string(filepath.Separator), "")
		out[i] = strings.ReplaceAll(out[i], wd, ".")
	}
	return out
}
