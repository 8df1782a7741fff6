// Command bench-upstream is the benchmark's stand-in application server:
// plain net/http, HTTP/1.1 keep-alive, every request answered with a fixed
// body whose size the path selects (/64k: 64 KiB; anything else: 1 KiB).
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
	"syscall"
	"time"
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
	srv := &http.Server{
		Handler:           handler(),
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
