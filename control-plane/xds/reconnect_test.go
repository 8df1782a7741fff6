package xds

import (
	"context"
	"runtime"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/meshconfig"
)

// TestReconnectWithOldServersVersion: a sidecar whose control plane was
// restarted opens a new stream whose first request carries the version it
// ACKed from the old server. Versions are push counters, so that version
// can be the new server's too ("1" after its first push); the snapshot
// cache then took the node for up to date and never answered a type with
// no resources (a node without a workload: payment-2 in the e2e
// TestControlPlaneKilledUnderLoad), and the sidecar got no config.
func TestReconnectWithOldServersVersion(t *testing.T) {
	tests := []struct {
		name string
		node string
		// connectFirst: the stream opens before the new server's first push.
		connectFirst bool
	}{
		{name: "no workload, after first push", node: "ghost.shop"},
		{name: "no workload, before first push", node: "ghost.shop", connectFirst: true},
		{name: "workload, after first push", node: "order-1.shop"},
		{name: "workload, before first push", node: "order-1.shop", connectFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cc := startServer(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if !tt.connectFirst {
				s.Update(parse(t, meshYAML))
				s.Push()
			}
			c := newADSClient(t, ctx, cc, tt.node)
			// The old server's ACKed version; no nonce: a new stream.
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, VersionInfo: "1"})
			if tt.connectFirst {
				waitFor(t, "proxy connected", func() bool { _, ok := proxyStatus(s, tt.node); return ok })
				s.Update(parse(t, meshYAML))
				s.Push()
			}
			r := c.recv(resource.ListenerType)
			if r.GetVersionInfo() != "1" {
				t.Fatalf("LDS version = %q, want 1", r.GetVersionInfo())
			}
			c.ack(r)
			waitFor(t, "ACK recorded", func() bool {
				p, _ := proxyStatus(s, tt.node)
				return p.Versions[resource.ListenerType].Acked == "1"
			})
		})
	}
}

// TestReconnectWhileDisconnecting: a node's last stream closes and a new
// stream of the node joins before the server has dropped the node (status
// calls disconnect outside its lock, and it waits for the snapshot mutex,
// which a push may hold). The late disconnect must not drop the node that
// is connected again: its stream would keep an empty subscription, never
// updated, while /debug/proxies shows it connected.
func TestReconnectWhileDisconnecting(t *testing.T) {
	const node = "order-1.shop"
	s := New(meshconfig.Default(), WithMaxConnecting(0))
	s.Update(parse(t, meshYAML))
	s.Push()
	var late []string
	s.status.disconnect = func(id string) { late = append(late, id) }
	ctx := t.Context()
	join := func(id int64) {
		k := streamKey{id: id}
		if err := s.status.open(ctx, k); err != nil {
			t.Fatal(err)
		}
		s.status.request(k, &core.Node{Id: node}, resource.ClusterType, "", "", "", false)
	}
	join(1)
	s.status.closed(streamKey{id: 1}) // its disconnect is held back
	join(2)
	if len(late) != 1 {
		t.Fatalf("disconnects %v, want the first stream's", late)
	}
	s.nodeDisconnected(late[0]) // comes after the new stream joined
	if s.snaps.get(node) == nil {
		t.Fatal("the reconnected node's snapshot was dropped")
	}
	s.Update(parse(t, meshYAML+payment2))
	s.Push()
	if v := s.snaps.get(node).versions[typeIndex(resource.EndpointType)]; v != "2" {
		t.Fatalf("EDS version after a push %q, want 2: the push did not reach the reconnected node", v)
	}
	// Once its last stream is gone for good, the node is dropped.
	s.status.closed(streamKey{id: 2})
	s.nodeDisconnected(late[1])
	if s.snaps.get(node) != nil {
		t.Fatal("snapshot kept after the last stream closed")
	}
}

// TestStreamGoroutinesEnd: every goroutine a stream starts (its handler's
// receiver) ends when the proxy goes away, SotW and delta alike, and the
// node is disconnected.
func TestStreamGoroutinesEnd(t *testing.T) {
	s, cc := startServer(t)
	s.Update(parse(t, meshYAML))
	s.Push()
	open := func(ctx context.Context) {
		c := newADSClient(t, ctx, cc, "order-1.shop")
		c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
		c.recv(resource.ClusterType)
		d := newDeltaClient(t, ctx, cc, "order-1.shop")
		d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
		d.recv(resource.ClusterType)
	}
	// A first pair warms the connection up (its transport goroutines stay).
	ctx, cancel := context.WithCancel(t.Context())
	open(ctx)
	cancel()
	waitFor(t, "proxy disconnected", func() bool { return s.Connected() == 0 })
	base := runtime.NumGoroutine()
	ctx, cancel = context.WithCancel(t.Context())
	for range 10 {
		open(ctx)
	}
	if n := runtime.NumGoroutine(); n < base+40 {
		t.Fatalf("%d goroutines with 20 streams open, %d before: fewer than a handler, a receiver and the client's reader each", n, base)
	}
	cancel()
	waitFor(t, "stream goroutines ended", func() bool { return runtime.NumGoroutine() <= base && s.Connected() == 0 })
}
