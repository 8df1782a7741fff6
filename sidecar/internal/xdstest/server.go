// Package xdstest runs a real go-control-plane v0.14 ADS server in-process
// and builds resources the way docs/architecture.md's contract describes
// them. It is for tests only.
package xdstest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Server is an ADS server backed by a snapshot cache in ADS mode.
type Server struct {
	// Addr is host:port the server listens on; Restart reuses it.
	Addr  string
	Cache cachev3.SnapshotCache

	t    testing.TB
	grpc *grpc.Server
	done chan struct{}
	// opts and register apply to every (re)start: StartWith.
	opts     []grpc.ServerOption
	register func(*grpc.Server)

	mu       sync.Mutex
	cond     *sync.Cond
	requests []*discovery.DiscoveryRequest
	streams  int
}

// Start starts a server on addr ("127.0.0.1:0" for any port) and stops it
// when the test ends.
func Start(t testing.TB, addr string) *Server { t.Helper(); return StartWith(t, addr, nil) }

// StartWith is Start with gRPC server options (TLS credentials,
// interceptors) and register, which adds services (the CA) next to ADS.
func StartWith(t testing.TB, addr string, register func(*grpc.Server), opts ...grpc.ServerOption) *Server {
	t.Helper()
	s := &Server{t: t, Cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), opts: opts, register: register}
	s.cond = sync.NewCond(&s.mu)
	s.serve(addr)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(addr string) {
	s.t.Helper()
	var lis net.Listener
	var err error
	// The port of a server that was just killed can take a moment to free.
	for i := 0; ; i++ {
		lis, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("xdstest: listen %s: %v", addr, err)
	}
	s.Addr = lis.Addr().String()
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			s.mu.Lock()
			s.streams++
			s.mu.Unlock()
			return nil
		},
		StreamRequestFunc: func(_ int64, req *discovery.DiscoveryRequest) error {
			s.mu.Lock()
			s.requests = append(s.requests, proto.Clone(req).(*discovery.DiscoveryRequest))
			s.cond.Broadcast()
			s.mu.Unlock()
			return nil
		},
	}
	s.grpc = grpc.NewServer(s.opts...)
	discovery.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(context.Background(), s.Cache, cb))
	if s.register != nil {
		s.register(s.grpc)
	}
	done := make(chan struct{})
	s.done = done
	go func() {
		defer close(done)
		_ = s.grpc.Serve(lis)
	}()
}

// Stop kills the server: open streams break at once.
func (s *Server) Stop() {
	if s.grpc == nil {
		return
	}
	s.grpc.Stop()
	<-s.done
	s.grpc = nil
}

// Restart starts a new server, with a new empty cache, on the same address:
// a control plane that was killed and came back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	s.serve(s.Addr)
}

// Resources are the resources of one snapshot.
type Resources struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
	Secrets   []*tlsv3.Secret
}

// Set publishes a snapshot of version for node. It does not check the
// snapshot's consistency, so tests can send bad configuration.
func (s *Server) Set(node, version string, r Resources) {
	s.t.Helper()
	m := map[resourcev3.Type][]types.Resource{}
	for _, l := range r.Listeners {
		m[resourcev3.ListenerType] = append(m[resourcev3.ListenerType], l)
	}
	for _, rc := range r.Routes {
		m[resourcev3.RouteType] = append(m[resourcev3.RouteType], rc)
	}
	for _, c := range r.Clusters {
		m[resourcev3.ClusterType] = append(m[resourcev3.ClusterType], c)
	}
	for _, e := range r.Endpoints {
		m[resourcev3.EndpointType] = append(m[resourcev3.EndpointType], e)
	}
	for _, sec := range r.Secrets {
		m[resourcev3.SecretType] = append(m[resourcev3.SecretType], sec)
	}
	snap, err := cachev3.NewSnapshot(version, m)
	if err != nil {
		s.t.Fatalf("xdstest: snapshot %s: %v", version, err)
	}
	if err := s.Cache.SetSnapshot(context.Background(), node, snap); err != nil {
		s.t.Fatalf("xdstest: set snapshot %s: %v", version, err)
	}
}

// Requests returns every request the server received so far.
func (s *Server) Requests() []*discovery.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discovery.DiscoveryRequest(nil), s.requests...)
}

// Streams returns how many ADS streams were opened.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// Mark returns the number of requests received so far, for WaitRequest.
func (s *Server) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// WaitRequest waits until a request received after the first from requests
// satisfies match, and returns it.
func (s *Server) WaitRequest(from int, timeout time.Duration, match func(*discovery.DiscoveryRequest) bool) *discovery.DiscoveryRequest {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := from
	for {
		for ; seen < len(s.requests); seen++ {
			if match(s.requests[seen]) {
				return s.requests[seen]
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("xdstest: no matching request within %v (%d requests seen)", timeout, len(s.requests))
		}
		s.cond.Wait()
	}
}

// ACK matches an ACK of version for typeURL.
func ACK(typeURL, version string) func(*discovery.DiscoveryRequest) bool {
	return func(r *discovery.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetVersionInfo() == version && r.GetErrorDetail() == nil && r.GetResponseNonce() != ""
	}
}

// NACK matches a NACK for typeURL.
func NACK(typeURL string) func(*discovery.DiscoveryRequest) bool {
	return func(r *discovery.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetErrorDetail() != nil
	}
}

// Versions gives each resource type its own version in SetVersions.
type Versions struct {
	Listeners, Routes, Clusters, Endpoints string
}

// SetVersions publishes a snapshot whose types carry different versions:
// the server then sends only the types whose version changed, which lets a
// test send routes before the clusters they name.
func (s *Server) SetVersions(node string, v Versions, r Resources) {
	s.t.Helper()
	snap := &cachev3.Snapshot{}
	snap.Resources[types.Listener] = cachev3.NewResources(v.Listeners, items(r.Listeners))
	snap.Resources[types.Route] = cachev3.NewResources(v.Routes, items(r.Routes))
	snap.Resources[types.Cluster] = cachev3.NewResources(v.Clusters, items(r.Clusters))
	snap.Resources[types.Endpoint] = cachev3.NewResources(v.Endpoints, items(r.Endpoints))
	if err := s.Cache.SetSnapshot(context.Background(), node, snap); err != nil {
		s.t.Fatalf("xdstest: set snapshot: %v", err)
	}
}

func items[M types.Resource](ms []M) []types.Resource {
	out := make([]types.Resource, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
