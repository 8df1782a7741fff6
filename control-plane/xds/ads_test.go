package xds

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// barrier proves that nothing else is queued on a SotW stream: it changes
// the stream's Secret subscription (a new name each time, so the server
// must answer) and expects that answer as the very next response. The
// server handles a stream's requests in order and sends what a request
// makes pending right after it, so a response that was due before the
// barrier would arrive first and fail recv.
type barrier struct {
	c    *adsClient
	last *discovery.DiscoveryResponse
	n    int
}

func (b *barrier) pass() {
	b.c.t.Helper()
	b.send()
	b.last = b.c.recv(resource.SecretType)
}

// collect passes the barrier and returns the responses that came before
// its answer, in order.
func (b *barrier) collect() []*discovery.DiscoveryResponse {
	b.c.t.Helper()
	b.send()
	var out []*discovery.DiscoveryResponse
	out, b.last = untilSecret(b.c.t, b.c.resps)
	return out
}

// send sends the barrier's request: the Secret subscription of a new name.
func (b *barrier) send() {
	b.c.t.Helper()
	b.n++
	req := &discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: []string{"barrier-" + strings.Repeat("x", b.n)}}
	if b.last != nil {
		req.VersionInfo, req.ResponseNonce = b.last.GetVersionInfo(), b.last.GetNonce()
	}
	b.c.send(req)
}

// untilSecret reads resps up to a Secret response (a barrier's answer)
// and returns the responses before it, in order, and it.
func untilSecret[R interface{ GetTypeUrl() string }](t *testing.T, resps <-chan R) (before []R, secret R) {
	t.Helper()
	for {
		select {
		case r, ok := <-resps:
			if !ok {
				t.Fatal("stream closed")
			}
			if r.GetTypeUrl() == resource.SecretType {
				return before, r
			}
			before = append(before, r)
		case <-time.After(5 * time.Second):
			t.Fatal("no barrier response within 5s")
		}
	}
}

// shortTypes names the types of responses in order (C, E, L, R, S).
func shortTypes[R interface{ GetTypeUrl() string }](rs []R) string {
	var out strings.Builder
	for _, r := range rs {
		out.WriteByte("CELRS"[typeIndex(r.GetTypeUrl())])
	}
	return out.String()
}

// stockService is a new service order-1 reaches: its cluster, assignment
// and route (a virtual host) are new.
const stockService = `---
apiVersion: v1
kind: Service
metadata: {name: stock, namespace: shop}
spec:
  selector: {app: stock}
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: stock-1, namespace: shop, labels: {app: stock}}
spec: {address: 127.0.0.5, serviceAccount: stock}
`

// clusterNames and edsNames read a CDS response.
func clusterNames(t *testing.T, r *discovery.DiscoveryResponse) (all, eds []string) {
	t.Helper()
	for _, a := range r.GetResources() {
		cl := &cluster.Cluster{}
		if err := a.UnmarshalTo(cl); err != nil {
			t.Fatal(err)
		}
		all = append(all, cl.GetName())
		if cl.GetType() == cluster.Cluster_EDS {
			eds = append(eds, cl.GetEdsClusterConfig().GetServiceName())
		}
	}
	slices.Sort(all)
	slices.Sort(eds)
	return all, eds
}

// TestSotWProtocol: the SotW cases of the xDS protocol as Envoy and
// grpc-go's xDS client exercise them, on a real gRPC stream.
func TestSotWProtocol(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Server, c *adsClient, b *barrier)
	}{{
		name: "ACK: the same version is not sent again",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			r := c.recv(resource.ClusterType)
			if r.GetVersionInfo() != "1" || len(r.GetResources()) != 3 {
				t.Fatalf("CDS version %q with %d clusters, want 1 with 3", r.GetVersionInfo(), len(r.GetResources()))
			}
			c.ack(r)
			b.pass()
			waitFor(t, "ACK recorded", func() bool {
				p, _ := proxyStatus(s, "order-1.shop")
				return p.Versions[resource.ClusterType].Acked == "1"
			})
		},
	}, {
		name: "NACK: recorded, the rejected version not re-sent, the next one is",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			_, eds, _, _ := c.subscribe()
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			eds2 := c.recv(resource.EndpointType)
			c.send(&discovery.DiscoveryRequest{
				TypeUrl: resource.EndpointType, VersionInfo: eds.GetVersionInfo(), ResponseNonce: eds2.GetNonce(),
				ResourceNames: namesOf(t, eds2), ErrorDetail: &rpcstatus.Status{Code: 3, Message: "bad weight"},
			})
			b.pass()
			p, _ := proxyStatus(s, "order-1.shop")
			if ts := p.Versions[resource.EndpointType]; ts.Nack != "bad weight" || ts.Acked != "1" || ts.Sent != "2" {
				t.Fatalf("EDS status %+v, want NACK recorded, 1 ACKed, 2 sent", ts)
			}
			s.Update(parse(t, meshYAML))
			s.Push()
			if eds3 := c.recv(resource.EndpointType); eds3.GetVersionInfo() != "3" {
				t.Fatalf("EDS version %q after the NACK and a change, want 3", eds3.GetVersionInfo())
			}
		},
	}, {
		name: "stale nonce: ignored, subscription included",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			_, names := clusterNames(t, c.recv(resource.ClusterType))
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names[:1]})
			eds := c.recv(resource.EndpointType)
			c.ack(eds, names[:1]...)
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			eds2 := c.recv(resource.EndpointType)
			// An answer to the first response, with more names, while the
			// second is in flight: stale.
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, VersionInfo: "1", ResponseNonce: eds.GetNonce(), ResourceNames: names})
			b.pass()
			// The answer to the one in flight carries the names again.
			c.ack(eds2, names...)
			eds2b := c.recv(resource.EndpointType)
			if got := namesOf(t, eds2b); eds2b.GetVersionInfo() != "2" || !slices.Equal(sorted(got), names) {
				t.Fatalf("EDS %q %v, want version 2 with %v", eds2b.GetVersionInfo(), got, names)
			}
		},
	}, {
		name: "names added and removed: answered at the same version",
		run: func(t *testing.T, _ *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			_, names := clusterNames(t, c.recv(resource.ClusterType))
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names})
			r := c.recv(resource.EndpointType)
			if got := sorted(namesOf(t, r)); !slices.Equal(got, names) {
				t.Fatalf("EDS %v, want %v", got, names)
			}
			c.ack(r, names[1:]...)
			r = c.recv(resource.EndpointType)
			if got := namesOf(t, r); r.GetVersionInfo() != "1" || !slices.Equal(got, names[1:]) {
				t.Fatalf("EDS after unsubscribing %s: %q %v, want 1 %v", names[0], r.GetVersionInfo(), got, names[1:])
			}
			c.ack(r, names[1:]...) // same names: nothing to answer
			b.pass()
		},
	}, {
		name: "wildcard: no names, then * , then names end the legacy wildcard",
		run: func(t *testing.T, _ *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			r := c.recv(resource.ClusterType)
			all, _ := clusterNames(t, r)
			if len(all) != 3 {
				t.Fatalf("wildcard CDS %v, want 3 clusters", all)
			}
			c.ack(r, all[0])
			r = c.recv(resource.ClusterType)
			if got, _ := clusterNames(t, r); !slices.Equal(got, all[:1]) {
				t.Fatalf("CDS for %s: %v", all[0], got)
			}
			c.ack(r) // no names after naming some: nothing
			r = c.recv(resource.ClusterType)
			if len(r.GetResources()) != 0 {
				t.Fatalf("CDS with no names after the legacy wildcard: %d clusters, want 0", len(r.GetResources()))
			}
			c.ack(r, "*")
			r = c.recv(resource.ClusterType)
			if got, _ := clusterNames(t, r); !slices.Equal(got, all) {
				t.Fatalf("CDS for *: %v, want %v", got, all)
			}
			c.ack(r, "*")
			b.pass()
		},
	}, {
		name: "slow proxy: one response in flight per type, then the latest",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			_, _, _, _ = c.subscribe()
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			eds2 := c.recv(resource.EndpointType)
			s.Update(parse(t, meshYAML))
			s.Push()
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			b.pass() // versions 3 and 4 wait for the ACK of 2
			c.ack(eds2, namesOf(t, eds2)...)
			if r := c.recv(resource.EndpointType); r.GetVersionInfo() != "4" {
				t.Fatalf("EDS after the ACK: version %q, want the latest, 4", r.GetVersionInfo())
			}
		},
	}, {
		// Weft's sidecar holds a response naming clusters it has not got
		// yet and meanwhile changes its subscription with that response's
		// nonce and the version it still runs: answered, not an ACK.
		name: "names changed with the in-flight nonce and the old version: answered, not an ACK",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			_, eds, _, _ := c.subscribe()
			names := namesOf(t, eds)
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			eds2 := c.recv(resource.EndpointType)
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, VersionInfo: eds.GetVersionInfo(), ResponseNonce: eds2.GetNonce(), ResourceNames: names[:1]})
			r := c.recv(resource.EndpointType)
			if got := namesOf(t, r); r.GetVersionInfo() != "2" || !slices.Equal(got, names[:1]) {
				t.Fatalf("EDS %q %v, want 2 with %v", r.GetVersionInfo(), got, names[:1])
			}
			b.pass()
			p, _ := proxyStatus(s, "order-1.shop")
			if ts := p.Versions[resource.EndpointType]; ts.Acked != "1" || ts.Sent != "2" {
				t.Fatalf("EDS status %+v, want 1 ACKed, 2 sent", ts)
			}
			c.ack(r, names[:1]...)
			waitFor(t, "ACK of 2", func() bool {
				p, _ := proxyStatus(s, "order-1.shop")
				return p.Versions[resource.EndpointType].Acked == "2"
			})
		},
	}, {
		// The xDS make-before-break order: while CDS 1 waits for its ACK,
		// the EDS, LDS and RDS of push 2 (which name its new cluster)
		// wait for CDS 2.
		name: "ordering: types that depend on an unanswered CDS wait for its next version",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			cds := c.recv(resource.ClusterType) // not ACKed
			_, names := clusterNames(t, cds)
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names})
			c.ack(c.recv(resource.EndpointType), names...)
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType})
			c.ack(c.recv(resource.ListenerType))
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{"outbound"}})
			c.ack(c.recv(resource.RouteType), "outbound")
			b.pass()
			s.Update(parse(t, meshYAML+stockService))
			s.Push()
			if got := b.collect(); len(got) != 0 {
				t.Fatalf("sent %s while CDS 1 is unanswered, want nothing before CDS 2", shortTypes(got))
			}
			c.ack(cds)
			cds2 := c.recv(resource.ClusterType)
			got := append([]*discovery.DiscoveryResponse{cds2}, b.collect()...)
			if order := shortTypes(got); order != "CER" {
				t.Fatalf("after the CDS ACK: %s, want CDS, EDS, RDS of push 2", order)
			}
			for _, r := range got {
				if r.GetVersionInfo() != "2" {
					t.Fatalf("%s version %q, want 2", r.GetTypeUrl(), r.GetVersionInfo())
				}
			}
		},
	}, {
		// grpc-go's xDS client subscribes LDS, then RDS, then CDS, then
		// EDS: a type nobody subscribed to holds nothing back.
		name: "ordering: an unsubscribed type holds nothing back",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType})
			lds := c.recv(resource.ListenerType)
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{"outbound"}})
			rds := c.recv(resource.RouteType)
			c.ack(lds)
			c.ack(rds, "outbound")
			b.pass()
			s.Update(parse(t, meshYAML+stockService))
			s.Push()
			if order := shortTypes(b.collect()); order != "R" {
				t.Fatalf("push 2 sent %s, want RDS (no CDS or EDS subscribed)", order)
			}
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
			cds := c.recv(resource.ClusterType)
			_, names := clusterNames(t, cds)
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names})
			if eds := c.recv(resource.EndpointType); len(eds.GetResources()) != len(names) {
				t.Fatalf("EDS has %d assignments, want %d", len(eds.GetResources()), len(names))
			}
		},
	}, {
		name: "node on the first request only",
		run: func(t *testing.T, s *Server, c *adsClient, b *barrier) {
			c.node = nil // every request but the first (the barrier's) without a node
			c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType})
			r := c.recv(resource.ListenerType)
			if len(r.GetResources()) != 2 {
				t.Fatalf("LDS has %d listeners, want 2", len(r.GetResources()))
			}
			c.ack(r)
			b.pass()
			waitFor(t, "ACK recorded", func() bool {
				p, _ := proxyStatus(s, "order-1.shop")
				return p.Versions[resource.ListenerType].Acked == "1"
			})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cc := startServer(t)
			s.Update(parse(t, meshYAML))
			s.Push()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := newADSClient(t, ctx, cc, "order-1.shop")
			b := &barrier{c: c}
			b.pass() // names the node
			tt.run(t, s, c, b)
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// deltaClient is a raw delta ADS stream for one node.
type deltaClient struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
	resps  chan *discovery.DeltaDiscoveryResponse
	// err is the stream's end, set before resps is closed.
	err  error
	node *core.Node // sent with the first request
	// barrier state: the Secret type's last response.
	last *discovery.DeltaDiscoveryResponse
}

func newDeltaClient(t *testing.T, ctx context.Context, cc *grpc.ClientConn, nodeID string) *deltaClient {
	t.Helper()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: stream, node: &core.Node{Id: nodeID}, resps: make(chan *discovery.DeltaDiscoveryResponse, 16)}
	go func() {
		defer close(c.resps)
		for {
			r, err := stream.Recv()
			if err != nil {
				c.err = err
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node, c.node = c.node, nil
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *deltaClient) recv(typeURL string) *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		if r.GetTypeUrl() != typeURL {
			c.t.Fatalf("got a %s response (%d resources, removed %v), want %s", r.GetTypeUrl(), len(r.GetResources()), r.GetRemovedResources(), typeURL)
		}
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no %s response within 5s", typeURL)
	}
	return nil
}

func (c *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}

// barrier: as barrier for SotW, with the Secret type's wildcard
// subscription dropped and taken again (a wildcard subscription is
// answered even when it has nothing to send).
func (c *deltaClient) barrier() {
	c.t.Helper()
	c.sendBarrier()
	c.last = c.recv(resource.SecretType)
}

// collect passes the barrier and returns the responses that came before
// its answer, in order.
func (c *deltaClient) collect() []*discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	c.sendBarrier()
	var out []*discovery.DeltaDiscoveryResponse
	out, c.last = untilSecret(c.t, c.resps)
	return out
}

// sendBarrier sends the barrier's requests.
func (c *deltaClient) sendBarrier() {
	c.t.Helper()
	if c.last != nil {
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResponseNonce: c.last.GetNonce(), ResourceNamesUnsubscribe: []string{"*"}})
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResourceNamesSubscribe: []string{"*"}})
}

func resourceNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, x := range r.GetResources() {
		out = append(out, x.GetName())
	}
	slices.Sort(out)
	return out
}

// edsOf is the EDS names of order-1 (its outbound clusters).
func edsOf(t *testing.T, s *Server) []string {
	t.Helper()
	d, err := s.ConfigDump("order-1.shop")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range d.Resources[resource.EndpointType].Items {
		i := strings.Index(string(it), `"clusterName":"`)
		rest := string(it)[i+len(`"clusterName":"`):]
		out = append(out, rest[:strings.IndexByte(rest, '"')])
	}
	slices.Sort(out)
	return out
}

const paymentService = `apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{port: 8080}]
---
`

// TestDeltaProtocol: the delta cases of the xDS protocol.
func TestDeltaProtocol(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Server, cc *grpc.ClientConn, c *deltaClient)
	}{{
		name: "wildcard: everything, then only what changed; ACK and NACK recorded",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType})
			r := c.recv(resource.EndpointType)
			if len(r.GetResources()) != 2 || r.GetSystemVersionInfo() != "1" {
				t.Fatalf("EDS: %v version %q, want 2 assignments at 1", resourceNames(r), r.GetSystemVersionInfo())
			}
			c.ack(r)
			c.barrier()
			waitFor(t, "ACK", func() bool {
				p, _ := proxyStatus(s, "order-1.shop")
				return p.Versions[resource.EndpointType].Acked == "1"
			})
			// A payment endpoint more: payment's assignment alone.
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			r = c.recv(resource.EndpointType)
			if got := resourceNames(r); len(got) != 1 || !strings.Contains(got[0], "payment") || len(r.GetRemovedResources()) != 0 || r.GetSystemVersionInfo() != "2" {
				t.Fatalf("EDS update: %v removed %v at %q, want payment's assignment alone at 2", got, r.GetRemovedResources(), r.GetSystemVersionInfo())
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ErrorDetail: &rpcstatus.Status{Message: "no"}})
			c.barrier()
			p, _ := proxyStatus(s, "order-1.shop")
			if ts := p.Versions[resource.EndpointType]; ts.Nack != "no" || ts.Acked != "1" || ts.Sent != "2" {
				t.Fatalf("EDS status %+v, want the NACK, 1 ACKed, 2 sent", ts)
			}
		},
	}, {
		name: "removed resources",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
			r := c.recv(resource.ClusterType)
			c.ack(r)
			before := resourceNames(r)
			// The payment Service goes: its outbound cluster is removed.
			s.Update(parse(t, strings.Replace(meshYAML, paymentService, "", 1)))
			s.Push()
			r = c.recv(resource.ClusterType)
			var gone []string
			for _, n := range before {
				if strings.Contains(n, "payment") {
					gone = append(gone, n)
				}
			}
			if !slices.Equal(r.GetRemovedResources(), gone) || len(gone) == 0 {
				t.Fatalf("removed %v, want %v", r.GetRemovedResources(), gone)
			}
		},
	}, {
		name: "explicit subscribe and unsubscribe",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.barrier() // names the node: its snapshot exists
			names := edsOf(t, s)
			if len(names) != 2 {
				t.Fatalf("order-1 has EDS %v, want 2 names", names)
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: names[:1]})
			r := c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, names[:1]) {
				t.Fatalf("EDS %v, want %v", got, names[:1])
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesSubscribe: names[1:]})
			r = c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, names[1:]) {
				t.Fatalf("EDS after subscribing %v: %v, want only it", names[1:], got)
			}
			// Subscribed again although the proxy has it: sent again (the
			// spec: the proxy may have dropped it).
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesSubscribe: names[:1]})
			r = c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, names[:1]) {
				t.Fatalf("EDS after subscribing %v again: %v, want it again", names[:1], got)
			}
			// Unsubscribe payment's: its change is not sent.
			pay := names[0]
			if !strings.Contains(pay, "payment") {
				pay = names[1]
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesUnsubscribe: []string{pay}})
			s.Update(parse(t, meshYAML+payment2))
			s.Push()
			c.barrier()
			// Subscribed again: sent, with its new endpoints.
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{pay}})
			r = c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, []string{pay}) || r.GetSystemVersionInfo() != "2" {
				t.Fatalf("EDS after subscribing %s again: %v at %q", pay, got, r.GetSystemVersionInfo())
			}
		},
	}, {
		name: "reconnect with initial_resource_versions: only what differs, and what is gone",
		run: func(t *testing.T, s *Server, cc *grpc.ClientConn, c *deltaClient) {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType})
			r := c.recv(resource.ListenerType)
			have := map[string]string{}
			for _, x := range r.GetResources() {
				have[x.GetName()] = x.GetVersion()
			}
			c.ack(r)
			c2 := newDeltaClient(t, t.Context(), cc, "order-1.shop")
			c2.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, InitialResourceVersions: have})
			r = c2.recv(resource.ListenerType)
			if len(r.GetResources()) != 0 || len(r.GetRemovedResources()) != 0 {
				t.Fatalf("up to date proxy got %v, removed %v; want an empty answer", resourceNames(r), r.GetRemovedResources())
			}
			c3 := newDeltaClient(t, t.Context(), cc, "order-1.shop")
			stale := map[string]string{"gone": "x"}
			var changed string
			for n, v := range have {
				stale[n] = v
				changed = n
			}
			stale[changed] = "old"
			c3.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, InitialResourceVersions: stale})
			r = c3.recv(resource.ListenerType)
			if got := resourceNames(r); !slices.Equal(got, []string{changed}) || !slices.Equal(r.GetRemovedResources(), []string{"gone"}) {
				t.Fatalf("got %v removed %v, want [%s] removed [gone]", got, r.GetRemovedResources(), changed)
			}
		},
	}, {
		// Answered although there is nothing to send: the proxy's answer
		// completes its first configuration (admission waits for it; the
		// slot was held for admissionHold by every such proxy after a
		// control-plane restart).
		name: "reconnect with explicit names all up to date: an empty answer",
		run: func(t *testing.T, s *Server, cc *grpc.ClientConn, c *deltaClient) {
			c.barrier()
			names := edsOf(t, s)
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: names})
			r := c.recv(resource.EndpointType)
			have := map[string]string{}
			for _, x := range r.GetResources() {
				have[x.GetName()] = x.GetVersion()
			}
			c.ack(r)
			c2 := newDeltaClient(t, t.Context(), cc, "order-1.shop")
			c2.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: names, InitialResourceVersions: have})
			r = c2.recv(resource.EndpointType)
			if len(r.GetResources()) != 0 || len(r.GetRemovedResources()) != 0 || r.GetSystemVersionInfo() != "1" {
				t.Fatalf("up to date proxy got %v, removed %v at %q; want an empty answer at 1", resourceNames(r), r.GetRemovedResources(), r.GetSystemVersionInfo())
			}
			// Nothing more until something changes.
			c2.ack(r)
			c2.barrier()
		},
	}, {
		name: "ordering: types that depend on an unanswered CDS wait for its next version",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
			cds := c.recv(resource.ClusterType) // not ACKed
			for _, typeURL := range []string{resource.EndpointType, resource.ListenerType, resource.RouteType} {
				c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL})
				c.ack(c.recv(typeURL))
			}
			c.barrier()
			s.Update(parse(t, meshYAML+stockService))
			s.Push()
			if got := c.collect(); len(got) != 0 {
				t.Fatalf("sent %s while CDS 1 is unanswered, want nothing before CDS 2", shortTypes(got))
			}
			c.ack(cds)
			cds2 := c.recv(resource.ClusterType)
			got := append([]*discovery.DeltaDiscoveryResponse{cds2}, c.collect()...)
			if order := shortTypes(got); order != "CER" {
				t.Fatalf("after the CDS ACK: %s, want CDS, EDS, RDS of push 2", order)
			}
			for _, r := range got {
				if r.GetSystemVersionInfo() != "2" {
					t.Fatalf("%s version %q, want 2", r.GetTypeUrl(), r.GetSystemVersionInfo())
				}
			}
		},
	}, {
		// A name the snapshot does not have is in removed_resources when
		// it is subscribed (on the first request or later) and when it
		// goes away; once said, not again.
		name: "explicit names that do not exist: removed_resources",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.barrier()
			names := edsOf(t, s)
			pay := names[0]
			if !strings.Contains(pay, "payment") {
				pay = names[1]
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{pay, "nope-1"}})
			r := c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, []string{pay}) || !slices.Equal(r.GetRemovedResources(), []string{"nope-1"}) {
				t.Fatalf("first EDS %v removed %v, want [%s] removed [nope-1]", got, r.GetRemovedResources(), pay)
			}
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesSubscribe: []string{"nope-2"}})
			r = c.recv(resource.EndpointType)
			if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"nope-2"}) {
				t.Fatalf("after subscribing nope-2: %v removed %v, want removed [nope-2] alone", resourceNames(r), r.GetRemovedResources())
			}
			c.ack(r)
			// The payment Service goes: its assignment is removed, and
			// the names said not to exist are not said again.
			s.Update(parse(t, strings.Replace(meshYAML, paymentService, "", 1)))
			s.Push()
			r = c.recv(resource.EndpointType)
			if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{pay}) {
				t.Fatalf("after payment went: %v removed %v, want removed [%s]", resourceNames(r), r.GetRemovedResources(), pay)
			}
		},
	}, {
		name: "wildcard and explicit names: one that does not exist, and one unsubscribed",
		run: func(t *testing.T, s *Server, _ *grpc.ClientConn, c *deltaClient) {
			c.barrier()
			names := edsOf(t, s)
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"*", names[0], "nope"}})
			r := c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, names) || !slices.Equal(r.GetRemovedResources(), []string{"nope"}) {
				t.Fatalf("first EDS %v removed %v, want %v removed [nope]", got, r.GetRemovedResources(), names)
			}
			// Unsubscribing an explicit name that "*" covers: the proxy
			// cannot tell whether to keep it; it is sent again.
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesUnsubscribe: []string{names[0]}})
			r = c.recv(resource.EndpointType)
			if got := resourceNames(r); !slices.Equal(got, names[:1]) || len(r.GetRemovedResources()) != 0 {
				t.Fatalf("after unsubscribing %s: %v removed %v, want it sent", names[0], got, r.GetRemovedResources())
			}
			// And one it does not cover: removed.
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), ResourceNamesUnsubscribe: []string{"nope"}})
			r = c.recv(resource.EndpointType)
			if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"nope"}) {
				t.Fatalf("after unsubscribing nope: %v removed %v, want removed [nope]", resourceNames(r), r.GetRemovedResources())
			}
		},
	}, {
		// Envoy names "*" on its first request when the type has explicit
		// names as well as the wildcard (and may name it alone).
		name: "reconnect with initial_resource_versions and * subscribed: only what differs, and what is gone",
		run: func(t *testing.T, s *Server, cc *grpc.ClientConn, c *deltaClient) {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
			r := c.recv(resource.ClusterType)
			have := map[string]string{}
			var changed string
			for _, x := range r.GetResources() {
				have[x.GetName()] = x.GetVersion()
				changed = x.GetName()
			}
			c.ack(r)
			stale := maps.Clone(have)
			stale["gone"], stale[changed] = "x", "old"
			for _, subscribe := range [][]string{{"*"}, {"*", changed}, {changed, "*"}} {
				c2 := newDeltaClient(t, t.Context(), cc, "order-1.shop")
				c2.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNamesSubscribe: subscribe, InitialResourceVersions: stale})
				r = c2.recv(resource.ClusterType)
				if got := resourceNames(r); !slices.Equal(got, []string{changed}) || !slices.Equal(r.GetRemovedResources(), []string{"gone"}) {
					t.Fatalf("subscribe %v: got %v removed %v, want [%s] removed [gone]", subscribe, got, r.GetRemovedResources(), changed)
				}
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, cc := startServer(t)
			s.Update(parse(t, meshYAML))
			s.Push()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tt.run(t, s, cc, newDeltaClient(t, ctx, cc, "order-1.shop"))
		})
	}
}
