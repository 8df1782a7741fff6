// Package xdsclient is the sidecar's ADS client: it subscribes to the
// control plane's configuration, validates it, ACKs or NACKs it, and hands
// the data path immutable snapshots of the last good configuration.
//
// # Protocol
//
// One gRPC stream of envoy.service.discovery.v3.AggregatedDiscoveryService
// (state of the world), opened by method name with the trimmed
// DiscoveryRequest/DiscoveryResponse through connect's gRPC protocol on
// net/http's HTTP/2 client (WithHTTPClient; sidecar/internal/cpconn builds
// it, with TLS, the credential and HTTP/2 health pings), so the sidecar
// does not link grpc-go. On a new stream the client asks for
// clusters (CDS, wildcard), the endpoints they reference (EDS, by name), listeners (LDS,
// wildcard) and the route configurations they reference (RDS, by name), in
// that order, each with the last version it ACKed, so a restarted stream
// resumes where the previous one stopped. Accepting listeners changes the
// RDS subscription; accepting clusters changes the EDS subscription.
//
// # Validation
//
// Every response is checked whole: each resource unmarshals into the
// trimmed Envoy types of api/xdsproto (by its Envoy type URL), passes the
// PGV rules of its Envoy type (xdsproto.Validate: what go-control-plane's
// ValidateAll enforces, on the fields the sidecar reads), uses only what
// the sidecar implements (an unknown required
// HTTP filter or a transport socket is rejected rather than ignored: that
// would fail open), and its references resolve as docs/architecture.md
// says. A route's cluster must exist when the route arrives (clusters come
// before routes in ADS order); a listener's RDS name and a cluster's EDS name
// are subscriptions that complete the configuration when they arrive
// (warming). An optional validator (WithValidator) lets the data path reject
// what it cannot compile. Any failure NACKs the whole response with
// error_detail naming the resource and the reason, and the last accepted
// configuration stays in force. A server that resends a rejected version at
// once (go-control-plane's snapshot cache does) gets its repeated NACKs
// delayed with backoff instead of a tight loop.
//
// # Publishing
//
// An accepted configuration is published (WithUpdateHandler) when it is
// complete: listeners and clusters accepted and every referenced route
// configuration and assignment present. An incomplete one waits up to the
// warming timeout, with the previous configuration in force, and is then
// published as it is. Ready is closed at the first publish. Snapshot returns
// the last accepted configuration; Status reports the connection, the last
// ACKed version of each type and the last NACK.
//
// # What a snapshot keeps
//
// Clusters and assignments are kept in their wire form with what the data
// path reads at every update decoded (an assignment's endpoints; a
// cluster's EDS name, TLS context, type and metadata); Resource decodes
// the rest again for the router's compilation of a new or changed cluster
// and for the config dump. Decoded, a mesh cluster is ~3 KB of protos and
// a one-endpoint assignment ~2 KB, against ~0.4 and ~0.2 KB encoded. An
// accepted response's resources are dropped before the update handler
// runs.
//
// # Goroutines
//
// Run owns everything: it runs one stream at a time and reconnects with
// jittered exponential backoff (200 ms doubling to 3 s by default), keeping
// the last good configuration in force while disconnected (a stream that
// cannot connect fails at once; a dead connection is found by the
// transport's pings). Per stream, one goroutine blocks in Receive and
// passes responses over a channel to
// the Run goroutine, which alone validates, commits, calls the validator and
// the update handler, and Sends. So the handler runs before the ACK, and it
// must not block: the sidecar compiles its routing table there and swaps it
// in atomically. Snapshot, Ready and Status are safe from any goroutine.
package xdsclient
