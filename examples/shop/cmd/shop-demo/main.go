// Command shop-demo runs the shop demo: the shop on a local mesh, a bounded
// load, payment scaled 1 -> 3 -> 1 mid-run, a table per route. It exits 0
// only if no request failed. `make demo` runs
//
//	bin/shop-demo -f examples/shop/mesh.yaml -bin bin
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftmesh/weft/examples/shop/demo"
)

func main() {
	cfg := demo.DefaultConfig()
	fs := flag.NewFlagSet("shop-demo", flag.ExitOnError)
	fs.StringVar(&cfg.MeshFile, "f", "examples/shop/mesh.yaml", "the shop's mesh file (the demo edits a copy)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory with weft-control-plane, weft-sidecar and shop")
	fs.StringVar(&cfg.RunDir, "run-dir", "", "keep the mesh file's copy and the logs here (default: a temporary directory, removed on success)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the load runs")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "checkouts per second")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "concurrent clients")
	fs.DurationVar(&cfg.ScaleUpAt, "scale-up-at", cfg.ScaleUpAt, "when to scale payment to 3 endpoints (offset into the load)")
	fs.DurationVar(&cfg.ScaleDownAt, "scale-down-at", cfg.ScaleDownAt, "when to scale payment back to 1 endpoint")
	fs.BoolVar(&cfg.Verbose, "v", false, "stream every process's log to stderr")
	fs.StringVar(&cfg.Jaeger, "jaeger", "", "OTLP/HTTP collector host:port (Jaeger's 4318) to send the mesh's spans to, sampling 1")
	fs.StringVar(&cfg.JaegerQuery, "jaeger-query", "", "Jaeger query API base URL, printed as the link to the demo's traces")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := demo.Run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shop-demo:", err)
		os.Exit(1)
	}
}
