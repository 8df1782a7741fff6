// Command weft-xdssim runs simulated sidecars (real ADS streams, SotW or
// delta, ACKing like weft-sidecar) against the real weft-control-plane fed
// by a generated file registry, and prints what it measured (see package
// tests/bench/xdssim).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/bench/xdssim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-xdssim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("weft-xdssim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg xdssim.Config
	var modes string
	fs.StringVar(&cfg.Bin, "bin", "bin", "directory holding weft-control-plane")
	fs.StringVar(&cfg.Dir, "run", ".cache/bench/xdssim", "run directory")
	fs.IntVar(&cfg.Mesh.Services, "services", 1000, "Services in the generated registry")
	fs.IntVar(&cfg.Mesh.Namespaces, "namespaces", 50, "namespaces")
	fs.IntVar(&cfg.Mesh.EndpointsPerService, "endpoints-per-service", 10, "WorkloadEntries per Service")
	fs.IntVar(&cfg.Mesh.Reach, "reach", 0, "egress allowlist: namespaces each proxy may reach (0 = the whole mesh)")
	fs.IntVar(&cfg.Proxies, "proxies", 1000, "simulated sidecars")
	fs.IntVar(&cfg.Conns, "conns", 32, "gRPC connections shared by the streams")
	fs.IntVar(&cfg.Changes, "changes", 5, "single endpoint changes to time")
	fs.Float64Var(&cfg.ChurnRate, "churn-rate", 50, "endpoint changes per second in the churn phase (0: none)")
	fs.DurationVar(&cfg.ChurnFor, "churn-for", 30*time.Second, "churn phase length")
	fs.BoolVar(&cfg.Storm, "storm", true, "run the reconnect storm")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Minute, "bound of every wait")
	fs.StringVar(&modes, "modes", "sotw,delta", "ADS flavours to run, in turn: sotw, delta or both")
	cpArgs := fs.String("cp-args", "", "extra weft-control-plane flags, space-separated (e.g. --max-connecting=128)")
	profiles := fs.String("profile-dir", "", "save the control plane's heap and CPU profiles under <dir>/<mode>/ (see xdssim.Config.ProfileDir)")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound of the whole run")
	verbose := fs.Bool("v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.ControlPlaneArgs = strings.Fields(*cpArgs)
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	base := cfg.Dir
	for _, m := range splitComma(modes) {
		c := cfg
		switch m {
		case "sotw":
		case "delta":
			c.Delta = true
		default:
			return fmt.Errorf("unknown mode %q", m)
		}
		c.Dir = base + "/" + m
		if *profiles != "" {
			c.ProfileDir = *profiles + "/" + m
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			return err
		}
		rep, err := xdssim.Run(ctx, c)
		if rep != nil {
			rep.Print(stdout)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
