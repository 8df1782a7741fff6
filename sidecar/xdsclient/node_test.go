package xdsclient_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// wireRecorder keeps the requests of each ADS stream as they came off the
// wire (go-control-plane gives its callbacks every request with the
// stream's node filled in).
type wireRecorder struct {
	mu      sync.Mutex
	streams [][]*discovery.DiscoveryRequest
}

type recordingStream struct {
	grpc.ServerStream
	r *wireRecorder
	i int
}

func (s *recordingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if req, ok := m.(*discovery.DiscoveryRequest); ok {
		s.r.mu.Lock()
		s.r.streams[s.i] = append(s.r.streams[s.i], proto.Clone(req).(*discovery.DiscoveryRequest))
		s.r.mu.Unlock()
	}
	return nil
}

func (r *wireRecorder) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	r.mu.Lock()
	r.streams = append(r.streams, nil)
	i := len(r.streams) - 1
	r.mu.Unlock()
	return handler(srv, &recordingStream{ServerStream: ss, r: r, i: i})
}

func (r *wireRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

func (r *wireRecorder) stream(i int) []*discovery.DiscoveryRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.streams) {
		return nil
	}
	return append([]*discovery.DiscoveryRequest(nil), r.streams[i]...)
}

// TestNodeOnFirstRequestOfEachStream: the sidecar names its node on a
// stream's first request only, and again on the first of a new stream
// after a reconnect. The control plane keeps the node of a stream's first
// request for the others (go-control-plane fills it in), so a node on
// every request would only be decoded and kept again with each request it
// retains: memory per proxy.
func TestNodeOnFirstRequestOfEachStream(t *testing.T) {
	rec := &wireRecorder{}
	srv := xdstest.StartWith(t, "127.0.0.1:0", nil, grpc.StreamInterceptor(rec.intercept))
	srv.Set(nodeID, "1", good())
	updates := make(chan *xdsclient.Snapshot, 100)
	c, err := xdsclient.New(srv.Addr, xdsclient.Node{Workload: workload, Namespace: ns, ServiceAccount: "order-sa", IP: nodeIP},
		xdsclient.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		xdsclient.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		xdsclient.WithUpdateHandler(func(s *xdsclient.Snapshot) { updates <- s }))
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
	waitVersion := func(v string) {
		t.Helper()
		timeout := time.After(wait)
		for {
			select {
			case s := <-updates:
				if allAt(v)(s) {
					return
				}
			case <-timeout:
				t.Fatalf("no snapshot at version %s", v)
			}
		}
	}
	// acked waits until stream i has ACKed every type at version v.
	acked := func(i int, v string) []*discovery.DiscoveryRequest {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			reqs := rec.stream(i)
			n := 0
			for _, typ := range []string{xdsclient.TypeCluster, xdsclient.TypeEndpoint, xdsclient.TypeListener, xdsclient.TypeRoute} {
				for _, r := range reqs {
					if xdstest.ACK(typ, v)(r) {
						n++
						break
					}
				}
			}
			if n == 4 {
				return reqs
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %d: %d of 4 types ACKed at version %s", i, n, v)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	check := func(i int, reqs []*discovery.DiscoveryRequest) {
		t.Helper()
		if got := reqs[0].GetNode().GetId(); got != nodeID {
			t.Errorf("stream %d: first request names node %q, want %q", i, got, nodeID)
		}
		for k, r := range reqs[1:] {
			if r.GetNode() != nil {
				t.Errorf("stream %d: request %d (%s, nonce %q) carries the node; want it on the first only",
					i, k+2, r.GetTypeUrl(), r.GetResponseNonce())
			}
		}
	}

	waitVersion("1")
	check(0, acked(0, "1"))

	srv.Stop()
	srv.Restart()
	srv.Set(nodeID, "2", good())
	waitVersion("2")
	last := rec.count() - 1
	if last < 1 {
		t.Fatal("no second stream after the restart")
	}
	check(last, acked(last, "2"))
}
