package xdsclient_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
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

// A control plane that pushes several responses and then ends the stream
// (a restart, a rollout) must not leave the client stuck: the ACK it sends
// for the first response fails while the receive side holds the next one,
// and the client must still see the stream's end and open a new one.
func TestReconnectWhenTheStreamEndsWithResponsesUnread(t *testing.T) {
	var streams atomic.Int32
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		if streams.Add(1) > 1 {
			<-ss.Context().Done() // the reconnect: hold it open
			return nil
		}
		var req discovery.DiscoveryRequest
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		for i := range 20 {
			v := strconv.Itoa(i + 1)
			if err := ss.SendMsg(&discovery.DiscoveryResponse{TypeUrl: xdsclient.TypeCluster, VersionInfo: v, Nonce: v}); err != nil {
				return err
			}
		}
		return status.Error(codes.Unavailable, "control plane restarting")
	}))
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	c, err := xdsclient.New(ln.Addr().String(), xdsclient.Node{Workload: workload, Namespace: ns},
		xdsclient.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for streams.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the client opened %d stream(s): it did not reconnect after the stream ended", streams.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
