// Package transport carries a request from the sidecar to the endpoint the
// load balancer picked: the last stage of the request path.
//
// Two hops exist:
//
//   - The tunnel, to an endpoint that runs a sidecar (its EDS metadata has
//     filter_metadata["weft"]["tunnel_port"]): the request goes over HTTP/2 to
//     <endpoint ip>:<tunnel_port>, the peer's inbound listener, with the
//     endpoint's own port in the mesh.HeaderTargetPort header. The default
//     Tunnel is cleartext HTTP/2 with prior knowledge (h2c); one connection
//     per peer address carries every concurrent request to that peer
//     (a second one is opened only when the peer's stream limit is reached).
//     The identity issue swaps in an mTLS Tunnel with WithTunnel, without
//     touching anything else; RoundTrip receives the endpoint, including
//     its expected SPIFFE ID. The dialers bound a dial by the endpoint's
//     connect timeout, which they read from the request context
//     (WithEndpoint, EndpointFromContext) when it is not their default;
//     Mesh.NeedsEndpoint tells the caller when to add it (the common case
//     needs no context layer, one allocation per request less).
//     The mTLS tunnel (MTLS) keeps two pools per peer: HTTP/1.1 keep-alive
//     connections (ALPN http/1.1) for plain requests, whether they arrived
//     as HTTP/1.x or as HTTP/2 (with no body or one of known length), and
//     the multiplexed HTTP/2 connection (ALPN h2) for gRPC, CONNECT
//     streams and HTTP/2 requests whose body is a stream of unknown length.
//   - Direct, to an endpoint without a sidecar, and to the local app from the
//     inbound listener: HTTP/1.1 over a keep-alive connection pool (package
//     h1client); gRPC calls (IsGRPC), which need HTTP/2, over h2c with prior
//     knowledge.
//
// The HTTP/2 hops (the h2c tunnel, the mTLS tunnel's HTTP/2 pool, direct
// gRPC) go through package h2client, or net/http's HTTP/2 transport with
// WithHTTP2Client / WithMTLSHTTP2Client(HTTP2ClientNetHTTP) (the
// sidecar's --http2-client=net/http). A request h2client knows the peer
// did not process (above the last stream id of its GOAWAY, or refused
// with REFUSED_STREAM) fails with an error wrapping ErrNotProcessed:
// like a DialError, safe to send again elsewhere whatever its method
// (h2client already sent one without a body again on another
// connection). A response body's Close, and a failed RoundTrip, return
// once h2client's body writer has closed the request body.
//
// A response from the HTTP/1.1 pools gives its Header map back when its
// body is closed (h1client.WithHeaderRecycling; the closed response's Header
// is then nil): callers use the map only until Close. The value slices
// they took from it stay theirs. Mesh.ReleasesRequest tells a caller when
// RoundTrip keeps nothing of a request once it answered (no body, an
// HTTP/1.1 pool), so the caller may reuse the request, and
// Mesh.RecycleResponse takes such a pool's response back once its body is
// closed and the caller is done with it.
//
// Both HTTP/1.1 pools keep an address's most recently used idle connection
// for the idle timeout (90 s) and its other idle connections for 10 s
// (h1client.WithSpareIdleTimeout): after a burst they shrink to what the
// load that follows uses.
//
// Addresses are IP literals from xDS; nothing on this path resolves names.
// A failure to connect is returned as a *DialError so callers can answer 502
// and know the request never reached the upstream. A dialed TCP connection
// is a *rawtcp.Conn (sidecar/internal/rawtcp): its reads and writes are raw
// system calls, so a request does not wake the runtime's sysmon thread.
//
// Goroutines: the HTTP/1.1 pools (direct, and the mTLS tunnel's, both
// h1client) have none per connection: the request is written and the
// response read on the caller's goroutine. h2client owns the goroutines
// of the HTTP/2 connections (one read loop each, a keep-alive timer, and
// a body writer per request whose body is a stream, or received whole
// but beyond the peer's send windows, while it sends);
// Close ends them (net/http's Transport owns its own, when selected).
// RoundTrip runs on the caller's goroutine. A Mesh is safe for
// concurrent use.
package transport
