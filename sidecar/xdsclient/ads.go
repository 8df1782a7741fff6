package xdsclient

import (
	"context"

	"google.golang.org/grpc"

	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
)

// streamADS is the full method name of Envoy's aggregated discovery stream.
// The sidecar speaks it with the trimmed DiscoveryRequest/Response (same
// wire form as Envoy's) instead of go-control-plane's generated client.
const streamADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

var adsStreamDesc = grpc.StreamDesc{
	StreamName:    "StreamAggregatedResources",
	ServerStreams: true,
	ClientStreams: true,
}

// adsClient opens ADS streams on a connection.
type adsClient struct{ conn grpc.ClientConnInterface }

// adsStream is one ADS stream: requests out, responses in.
type adsStream = grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]

// StreamAggregatedResources opens a stream; it ends with ctx.
func (a adsClient) StreamAggregatedResources(ctx context.Context, opts ...grpc.CallOption) (adsStream, error) {
	s, err := a.conn.NewStream(ctx, &adsStreamDesc, streamADS, opts...)
	if err != nil {
		return nil, err
	}
	return &grpc.GenericClientStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]{ClientStream: s}, nil
}
