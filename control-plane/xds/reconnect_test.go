package xds

import (
	"context"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
