// Command weft-injector is Weft's sidecar injector.
//
//	weft-injector [serve] --tls-cert-file=tls.crt --tls-key-file=tls.key [template flags]
//	weft-injector inject -f manifest.yaml [--namespace=ns] [template flags] > injected.yaml
//
// serve runs the admission webhook (injector/webhook) on --listen (default
// :15017) at /inject; inject runs the same injection offline on every Pod
// and pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
// CronJob) of a manifest ("-" = stdin) and writes the result to stdout.
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
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-injector:", err)
		os.Exit(1)
	}
}

// run dispatches the subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "inject") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "inject":
		cfg, err := parseInjectFlags(args, stderr)
		if err != nil {
			return err
		}
		return runInject(cfg, stdin, stdout)
	default:
		cfg, err := parseServeFlags(args, stderr)
		if err != nil {
			return err
		}
		return runServe(ctx, cfg)
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
}
