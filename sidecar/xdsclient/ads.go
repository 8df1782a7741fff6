package xdsclient

import (
	"context"

	"connectrpc.com/connect"

	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
)

// streamADS is the gRPC method name (HTTP/2 path) of Envoy's aggregated
// discovery stream. The sidecar speaks it with the trimmed
// DiscoveryRequest/Response (same wire form as Envoy's) through connect's
// gRPC protocol instead of a generated client.
const streamADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

// maxResponseBytes bounds one DiscoveryResponse.
const maxResponseBytes = 64 << 20

// adsClient opens ADS streams.
type adsClient struct {
	c *connect.Client[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
}

func newADSClient(hc connect.HTTPClient, baseURL string) adsClient {
	return adsClient{connect.NewClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse](
		hc, baseURL+streamADS, connect.WithGRPC(), connect.WithReadMaxBytes(maxResponseBytes))}
}

// adsStream is one ADS stream: requests out, responses in.
type adsStream = *connect.BidiStreamForClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]

// open starts a stream; it ends with ctx. The request goes out with the
// first Send.
func (a adsClient) open(ctx context.Context) adsStream { return a.c.CallBidiStream(ctx) }
