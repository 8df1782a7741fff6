package podharness

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/netnsharness"
)

// Forward accepts TCP connections on listen inside ns and splices each to
// target, dialled from the test process's own network namespace: it makes
// a process on loopback (the control plane next to the API server)
// reachable from the pods, without an interface or route in the host's
// namespace. It stops, closing every connection, when the test ends.
func Forward(t testing.TB, ns *netnsharness.NS, listen, target string) {
	t.Helper()
	ln, err := ns.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("podharness: forward %s -> %s: %v", listen, target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add {
			if ctx.Err() != nil {
				return false
			}
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
		return true
	}
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { splice(ctx, in, target, track) })
		}
	})
}

func splice(ctx context.Context, in net.Conn, target string, track func(net.Conn, bool) bool) {
	defer in.Close()
	out, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	if !track(in, true) || !track(out, true) {
		return
	}
	defer track(in, false)
	defer track(out, false)
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok && (err == nil || errors.Is(err, net.ErrClosed)) {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Go(func() { half(out, in) })
	wg.Go(func() { half(in, out) })
	wg.Wait()
}
