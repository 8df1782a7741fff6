package xds

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

const meshYAML = `apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: order, namespace: shop}
spec:
  selector: {app: order}
  ports: [{port: 8080, targetPort: 9000}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: payment-1, namespace: shop, labels: {app: payment}}
spec: {address: 127.0.0.2, serviceAccount: payment}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: order-1, namespace: shop, labels: {app: order}}
spec: {address: 127.0.0.3, serviceAccount: order}
`

// second payment endpoint: EDS changes for everyone, nothing else.
const payment2 = `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: payment-2, namespace: shop, labels: {app: payment}}
spec: {address: 127.0.0.4, serviceAccount: payment}
`

func parse(t testing.TB, data string) model.State {
	t.Helper()
	st, err := file.Parse("mesh.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startServer runs a Server on a loopback port; pushes happen when the test
// calls Push (Run is not started, so no timing is involved).
func startServer(t *testing.T) (*Server, *grpc.ClientConn) {
	t.Helper()
	return startServerWith(t)
}

// startServerWith is startServer with options.
func startServerWith(t *testing.T, opts ...Option) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := New(meshconfig.Default(), opts...)
	g := grpc.NewServer()
	s.Register(g)
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() { s.cancelStreams(); g.Stop() })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return s, cc
}

// adsClient is a raw SotW ADS stream for one node.
type adsClient struct {
	t      *testing.T
	node   *core.Node
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discovery.DiscoveryResponse
	// err is the stream's end, set before resps is closed.
	err error
	// lastCDS is a test's record of a CDS response.
	lastCDS *discovery.DiscoveryResponse
}

func newADSClient(t *testing.T, ctx context.Context, cc *grpc.ClientConn, nodeID string) *adsClient {
	t.Helper()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, node: &core.Node{Id: nodeID}, stream: stream, resps: make(chan *discovery.DiscoveryResponse, 16)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.err = err
				close(c.resps)
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *adsClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *adsClient) recv(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		if r.GetTypeUrl() != typeURL {
			c.t.Fatalf("got a %s response, want %s", r.GetTypeUrl(), typeURL)
		}
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no %s response within 5s", typeURL)
	}
	return nil
}

func (c *adsClient) none(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected %s response version %s", r.GetTypeUrl(), r.GetVersionInfo())
	case <-time.After(d):
	}
}

// ack requests a type again with the version and nonce of its last response.
func (c *adsClient) ack(r *discovery.DiscoveryResponse, names ...string) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(), ResourceNames: names})
}

// subscribe does the Envoy dance: CDS, EDS for the clusters, LDS, RDS.
func (c *adsClient) subscribe() (cds, eds, lds, rds *discovery.DiscoveryResponse) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	cds = c.recv(resource.ClusterType)
	var edsNames []string
	for _, a := range cds.GetResources() {
		cl := &cluster.Cluster{}
		if err := a.UnmarshalTo(cl); err != nil {
			c.t.Fatal(err)
		}
		if cl.GetType() == cluster.Cluster_EDS {
			edsNames = append(edsNames, cl.GetEdsClusterConfig().GetServiceName())
		}
	}
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: edsNames})
	eds = c.recv(resource.EndpointType)
	c.ack(cds)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType})
	lds = c.recv(resource.ListenerType)
	c.ack(eds, edsNames...)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{"outbound"}})
	rds = c.recv(resource.RouteType)
	c.ack(lds)
	c.ack(rds, "outbound")
	return cds, eds, lds, rds
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func proxyStatus(s *Server, id string) (ProxyStatus, bool) {
	for _, p := range s.Proxies() {
		if p.ID == id {
			return p, true
		}
	}
	return ProxyStatus{}, false
}

func TestADSServesAndTracksStatus(t *testing.T) {
	s, cc := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.Update(parse(t, meshYAML))
	s.Push()

	order := newADSClient(t, ctx, cc, "order-1.shop")
	cds, eds, lds, rds := order.subscribe()
	if n := len(cds.GetResources()); n != 3 { // 2 outbound + inbound|9000||
		t.Fatalf("CDS has %d clusters, want 3", n)
	}
	if n := len(eds.GetResources()); n != 2 {
		t.Fatalf("EDS has %d assignments, want 2", n)
	}
	if n := len(lds.GetResources()); n != 2 {
		t.Fatalf("LDS has %d listeners, want 2", n)
	}
	if n := len(rds.GetResources()); n != 1 {
		t.Fatalf("RDS has %d route configs, want 1", n)
	}
	waitFor(t, "ACKs recorded", func() bool {
		p, ok := proxyStatus(s, "order-1.shop")
		return ok && p.Versions[resource.RouteType].Acked == "1" && p.Versions[resource.ClusterType].Acked == "1"
	})

	// A node without a workload gets an empty snapshot.
	ghost := newADSClient(t, ctx, cc, "ghost.shop")
	ghost.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType})
	gl := ghost.recv(resource.ListenerType)
	if len(gl.GetResources()) != 0 {
		t.Fatalf("ghost got %d listeners", len(gl.GetResources()))
	}
	ghost.ack(gl)

	// A registry change that adds an endpoint: a new EDS version for the
	// real node, nothing for the ghost, no other type re-sent.
	s.Update(parse(t, meshYAML+payment2))
	s.Push()
	eds2 := order.recv(resource.EndpointType)
	if eds2.GetVersionInfo() != "2" {
		t.Fatalf("EDS version after change = %q, want 2", eds2.GetVersionInfo())
	}
	var endpoints int
	for _, a := range eds2.GetResources() {
		cla := &endpoint.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cla.GetClusterName(), "payment") {
			endpoints = len(cla.GetEndpoints()[0].GetLbEndpoints())
		}
	}
	if endpoints != 2 {
		t.Fatalf("payment has %d endpoints after the change, want 2", endpoints)
	}
	order.none(200 * time.Millisecond)
	ghost.none(50 * time.Millisecond)

	// A change that translates to nothing new pushes nothing.
	s.Update(parse(t, strings.Replace(meshYAML+payment2, "{app: order}}", "{app: order, tier: back}}", 1)))
	s.Push()
	order.none(200 * time.Millisecond)

	// NACK the new EDS: the reason is recorded, the ACKed version stays.
	order.send(&discovery.DiscoveryRequest{
		TypeUrl: resource.EndpointType, VersionInfo: "1", ResponseNonce: eds2.GetNonce(),
		ResourceNames: namesOf(t, eds2), ErrorDetail: &rpcstatus.Status{Code: 3, Message: "endpoints: bad weight"},
	})
	waitFor(t, "NACK recorded", func() bool {
		p, _ := proxyStatus(s, "order-1.shop")
		ts := p.Versions[resource.EndpointType]
		return ts.Nack == "endpoints: bad weight" && ts.Acked == "1" && ts.Sent == "2"
	})
	if p, _ := proxyStatus(s, "ghost.shop"); p.Versions[resource.ListenerType].Acked != "1" {
		t.Fatalf("ghost status = %+v", p)
	}

	// Disconnect drops the proxy.
	cancel()
	waitFor(t, "proxies gone", func() bool { return len(s.Proxies()) == 0 })
	if _, err := s.ConfigDump("order-1.shop"); err == nil {
		t.Fatal("ConfigDump of a disconnected proxy succeeded")
	}
}

func namesOf(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		cla := &endpoint.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		out = append(out, cla.GetClusterName())
	}
	return out
}

func TestDeltaADS(t *testing.T) {
	s, cc := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.Update(parse(t, meshYAML))
	s.Push()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "payment-1.shop"}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResources()) != 2 || r.GetSystemVersionInfo() != "1" {
		t.Fatalf("delta LDS: %d resources, version %q", len(r.GetResources()), r.GetSystemVersionInfo())
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delta ACK", func() bool {
		p, ok := proxyStatus(s, "payment-1.shop")
		return ok && p.Versions[resource.ListenerType].Acked == "1"
	})
	// Changing the payment service's target port changes payment-1's
	// inbound listener: delta sends just that listener.
	s.Update(parse(t, strings.Replace(meshYAML, "ports: [{port: 8080}]", "ports: [{port: 8080, targetPort: 8081}]", 1)))
	s.Push()
	r, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResources()) != 1 || r.GetResources()[0].GetName() != "inbound" || r.GetSystemVersionInfo() != "2" {
		t.Fatalf("delta LDS update: %v, version %q", r.GetResources(), r.GetSystemVersionInfo())
	}
	d, err := s.ConfigDump("payment-1.shop")
	if err != nil || d.Resources[resource.ListenerType].Version != "2" || len(d.Resources[resource.ListenerType].Items) != 2 {
		t.Fatalf("ConfigDump = %+v, %v", d, err)
	}
	// Assignments are stand-ins in the snapshot (hash.go): the dump
	// still renders their endpoints.
	eds := d.Resources[resource.EndpointType].Items
	if len(eds) == 0 {
		t.Fatal("ConfigDump has no assignments")
	}
	for _, it := range eds {
		if !strings.Contains(string(it), `"lbEndpoints"`) {
			t.Fatalf("ConfigDump assignment without its endpoints: %s", it)
		}
	}
	cds := d.Resources[resource.ClusterType].Items
	if len(cds) == 0 {
		t.Fatal("ConfigDump has no clusters")
	}
	for _, it := range cds {
		if !strings.Contains(string(it), `"connectTimeout"`) {
			t.Fatalf("ConfigDump cluster without its fields: %s", it)
		}
	}
}
