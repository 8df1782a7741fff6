// Command bench-upstream is the benchmark's stand-in application server:
// plain net/http, HTTP/1.1 keep-alive and h2c (HTTP/2 with prior
// knowledge), every request answered with a fixed body whose size the path
// selects (/64k: 64 KiB; anything else: 1 KiB); gRPC calls (h2c,
// Content-Type application/grpc) go to the standard health service
// (grpc.health.v1.Health/Check answers SERVING), the unary call fortio's
// -grpc load sends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *addr, logger); err != nil {
		logger.Error("bench-upstream", "err", err)
		os.Exit(1)
	}
}

// Body sizes served by path.
const (
	smallSize = 1 << 10
	largeSize = 64 << 10
)

// handler answers every request with a fixed body; the two bodies are built
// once so the upstream itself allocates as little as possible per request.
func handler() http.Handler {
	small := body(smallSize)
	large := body(largeSize)
	smallLen := strconv.Itoa(len(small))
	largeLen := strconv.Itoa(len(large))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, n := small, smallLen
		if r.URL.Path == "/64k" {
			b, n = large, largeLen
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{n}
		_, _ = w.Write(b)
	})
}

// withGRPC sends gRPC calls to the health service and the rest to h.
func withGRPC(h http.Handler) (http.Handler, *grpc.Server) {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}), gs
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func run(ctx context.Context, addr string, logger *slog.Logger) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("bench-upstream: %w", err)
	}
	h, gs := withGRPC(handler())
	defer gs.Stop()
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       300 * time.Second,
	}
	logger.Info("bench-upstream listening", "addr", ln.Addr().String(), "small", smallSize, "large", largeSize)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bench-upstream: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench-upstream: shutdown: %w", err)
	}
	return nil
}
