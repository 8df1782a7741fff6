// Command weft-meshrss measures a real weft-sidecar's memory against the
// size of the mesh, with an allowlist that reaches 5 Services and with none
// (every Service), and prints a markdown table (see package
// tests/bench/meshrss; `make bench-mem`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/bench/meshrss"
)

func main() {
	var cfg meshrss.Config
	var sizes string
	flag.StringVar(&cfg.Bin, "bin", "bin", "directory holding weft-control-plane and weft-sidecar")
	flag.StringVar(&cfg.Dir, "run", ".cache/bench/meshrss", "run directory")
	flag.StringVar(&sizes, "services", "10,1000,10000", "mesh sizes (Services; multiples of 5), comma separated")
	flag.DurationVar(&cfg.Settle, "settle", 3*time.Minute, "bound of every wait")
	flag.DurationVar(&cfg.Idle, "idle", 3*time.Second, "how long the configured sidecar runs before it is read")
	flag.BoolVar(&cfg.Profile, "profile", false, "save each sidecar's heap profile (heap.pb.gz in its case directory)")
	timeout := flag.Duration("timeout", 20*time.Minute, "bound of the whole run")
	flag.Parse()
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintf(os.Stderr, "weft-meshrss: bad -services %q\n", sizes)
			os.Exit(2)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rs, err := meshrss.Run(ctx, cfg)
	args := strings.Join(os.Args[1:], " ")
	if wd, err := os.Getwd(); err == nil {
		args = strings.ReplaceAll(args, wd+string(os.PathSeparator), "") // no checkout path in BENCHMARKS.md
	}
	fmt.Printf("Command: `weft-meshrss %s`; %s UTC; load average %s\n\n", args, time.Now().UTC().Format("2006-01-02 15:04"), loadAverage())
	meshrss.Markdown(os.Stdout, rs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-meshrss:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " / ")
}
