// Command shop is the shop demo's service; --role picks which one. See
// package github.com/weftmesh/weft/examples/shop/app.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
)

func main() {
	var cfg app.Config
	fs := flag.NewFlagSet("shop", flag.ExitOnError)
	fs.StringVar(&cfg.Role, "role", "", "api-gateway, order, payment or inventory")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.StringVar(&cfg.Proxy, "proxy", "", "the sidecar's outbound listener, e.g. http://127.0.0.10:15001 (empty: call upstreams directly)")
	fs.StringVar(&cfg.Instance, "instance", "", "instance name reported in replies (default: the role)")
	fs.StringVar(&cfg.OrderURL, "order-url", app.DefaultOrderURL, "api-gateway: the order service")
	fs.StringVar(&cfg.PaymentURL, "payment-url", app.DefaultPaymentURL, "order: the payment service")
	fs.StringVar(&cfg.InventoryURL, "inventory-url", app.DefaultInventoryURL, "order: the inventory service")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "bound on each outbound call")
	fs.Float64Var(&cfg.Fault.ErrorRate, "fault-error-rate", 0, "fault injection: share of requests (0..1) answered with --fault-error-code")
	fs.IntVar(&cfg.Fault.ErrorCode, "fault-error-code", 503, "fault injection: status of an injected error")
	fs.DurationVar(&cfg.Fault.Delay, "fault-delay", 0, "fault injection: extra latency before every answer")
	fs.BoolVar(&cfg.Fault.Hang, "fault-hang", false, "fault injection: never answer (until the client gives up)")
	fs.Float64Var(&cfg.Fault.ResetRate, "fault-reset-rate", 0, "fault injection: share of requests (0..1) whose connection is closed without an answer")
	fs.BoolVar(&cfg.Fault.Dead, "fault-dead", false, "fault injection: reset every connection (the port stays bound)")
	fs.StringVar(&cfg.FaultAdmin, "fault-admin", "", "loopback address of the run-time fault control API (GET/PUT/DELETE /fault); empty: off")
	_ = fs.Parse(os.Args[1:])
	if cfg.Instance == "" {
		cfg.Instance = cfg.Role
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
