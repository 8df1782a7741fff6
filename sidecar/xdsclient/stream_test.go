package xdsclient_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// onMessage is a slog handler that signals each record with message msg.
type onMessage struct {
	msg string
	ch  chan struct{}
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }

// A server that accepts the connection and reads the requests but never
// answers (a frozen control plane: the kernel still accepts) does not make
// the client report connected: the stream's requests went out, but
// Connected waits for the server's first answer.
func TestNotConnectedUntilTheServerAnswers(t *testing.T) {
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	requested := make(chan struct{}, 1)
	c, err := xdsclient.New(ln.Addr().String(), xdsclient.Node{Workload: workload, Namespace: ns},
		xdsclient.WithLogger(slog.New(onMessage{msg: "xds stream requested", ch: requested})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-requested
	if st := c.Status(); st.Connected {
		t.Errorf("status %+v: connected to a server that never answered", st)
	}
}
