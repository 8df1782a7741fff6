// Command weft-control-plane is Weft's control plane: it reads the registry,
// translates it per proxy and serves the result over ADS, with a debug HTTP
// server beside it. See Config for the flags.
//
// Memory: unless GOGC is set in the environment the GC percent is 50 (the
// heap grows to 1.5 × the live heap, not 2 ×), and unless GOMEMLIMIT is
// set 75 % of the container's cgroup v2 memory limit becomes the runtime's
// soft memory limit; after a connect burst the freed heap is returned to
// the OS (memory.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(mainErr()) }

func mainErr() int {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-control-plane:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if percent, limit := applyGCSettings(); percent > 0 || limit > 0 {
		log.Info("gc settings", "gogc", percent, "memory_limit_bytes", limit) // 0: the environment's or Go's default
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, log); err != nil {
		log.Error("weft-control-plane failed", "err", err)
		return 1
	}
	return 0
}
