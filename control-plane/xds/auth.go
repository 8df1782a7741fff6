package xds

import (
	"context"
	"log/slog"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	grpcstatus "google.golang.org/grpc/status"
)

// Authenticator says which xDS node the credential of a stream proves. ctx
// is the stream's context (with its gRPC metadata and peer). Errors must
// never contain the credential.
type Authenticator interface {
	AuthenticateNode(ctx context.Context) (nodeID string, err error)
}

// guard wraps the status callbacks with authentication: a stream opens only
// with a credential the Authenticator accepts, and every request's node.id
// must be the node that credential proves; otherwise the stream ends with
// Unauthenticated or PermissionDenied and the attempt is logged. It runs
// before status, so a refused node is never connected and never gets a
// snapshot.
type guard struct {
	next *status
	auth Authenticator
	log  *slog.Logger

	mu      sync.Mutex
	streams map[streamKey]guardStream
}

type guardStream struct {
	node string // the authenticated node id
	peer string
}

var _ callbacks = (*guard)(nil)

func newGuard(next *status, auth Authenticator, log *slog.Logger) *guard {
	return &guard{next: next, auth: auth, log: log, streams: map[streamKey]guardStream{}}
}

func (g *guard) open(ctx context.Context, k streamKey) error {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	node, err := g.auth.AuthenticateNode(ctx)
	if err != nil {
		g.log.Warn("xds: refused stream: unauthenticated", "peer", addr, "error", err.Error())
		return grpcstatus.Error(codes.Unauthenticated, "xds: "+err.Error())
	}
	g.mu.Lock()
	g.streams[k] = guardStream{node: node, peer: addr}
	g.mu.Unlock()
	return g.next.open(ctx, k)
}

func (g *guard) check(k streamKey, node *core.Node, typeURL string) error {
	g.mu.Lock()
	st, ok := g.streams[k]
	g.mu.Unlock()
	if !ok {
		return grpcstatus.Error(codes.Unauthenticated, "xds: stream not authenticated")
	}
	if id := node.GetId(); id != "" && id != st.node {
		g.log.Warn("xds: refused request for another node", "authenticated_node", st.node, "requested_node", id,
			"type", typeURL, "peer", st.peer)
		return grpcstatus.Errorf(codes.PermissionDenied, "xds: credential proves node %q, request names node %q", st.node, id)
	}
	return nil
}

func (g *guard) closed(k streamKey) {
	g.mu.Lock()
	delete(g.streams, k)
	g.mu.Unlock()
}

// OnStreamOpen implements callbacks.
func (g *guard) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return g.open(ctx, streamKey{id: id})
}

// OnStreamClosed implements callbacks.
func (g *guard) OnStreamClosed(id int64, n *core.Node) {
	g.closed(streamKey{id: id})
	g.next.OnStreamClosed(id, n)
}

// OnStreamRequest implements callbacks.
func (g *guard) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	if err := g.check(streamKey{id: id}, req.GetNode(), req.GetTypeUrl()); err != nil {
		return err
	}
	return g.next.OnStreamRequest(id, req)
}

// OnStreamResponse implements callbacks.
func (g *guard) OnStreamResponse(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	g.next.OnStreamResponse(ctx, id, req, resp)
}

// OnDeltaStreamOpen implements callbacks.
func (g *guard) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	return g.open(ctx, streamKey{delta: true, id: id})
}

// OnDeltaStreamClosed implements callbacks.
func (g *guard) OnDeltaStreamClosed(id int64, n *core.Node) {
	g.closed(streamKey{delta: true, id: id})
	g.next.OnDeltaStreamClosed(id, n)
}

// OnStreamDeltaRequest implements callbacks.
func (g *guard) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	if err := g.check(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl()); err != nil {
		return err
	}
	return g.next.OnStreamDeltaRequest(id, req)
}

// OnStreamDeltaResponse implements callbacks.
func (g *guard) OnStreamDeltaResponse(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	g.next.OnStreamDeltaResponse(id, req, resp)
}
