// Package xds serves the mesh's configuration to the sidecars over ADS
// (state of the world and delta on the same Aggregated Discovery Service,
// ads.go) from one snapshot per connected node.
//
// # Flow
//
//	registry.Source --Update(state)--> [pending: latest wins]
//	    --kick--> debouncer (Run's goroutine; 100 ms of quiet, at most 1 s)
//	    --Push--> translate.Index for the state (Next of the previous one);
//	              for each connected node: its shape's translation (shape.go),
//	              hash per type, a new snapshot when a type changed
//	    --> snapshots (one per node) --wake--> SotW and delta ADS streams
//
// Update never blocks the registry: it stores the state and wakes the
// debouncer, so bursts of edits are coalesced into one push.
//
// # Versions
//
// Every push has a sequence number. Each node keeps, per type URL, the hash
// of its resources (deterministic protobuf marshalling) and the version they
// got when they last changed: a push sets a new snapshot only for nodes
// whose resources changed, and in it only the changed types carry the new
// version, so an endpoint change re-sends EDS alone (SotW compares versions
// per type; delta sends only the resources whose hash changed: the
// snapshot's version map against the one the stream last sent).
//
// # Scale
//
// A push costs per changed object, not per proxy: translations are per
// shape through one translate.Index, which shares outbound clusters,
// assignments and virtual hosts between shapes and (Index.Next) across
// states when their inputs did not change; after an endpoint change (only
// addresses differ) the Index hands a shape its previous translation back,
// the same object when the change does not reach it, and the shape keeps
// its representative workload, so a push costs per affected shape and
// unaffected shapes are neither translated nor hashed again; hash.go
// hashes each object once
// (two generations) and fills the delta version maps from those hashes, so
// no stream marshals every node's resources again to compare them; a
// shape whose hashes did not change is kept, and its nodes skip the sync;
// a node keeps the objects of its unchanged types; replicas share their
// listeners' filter chains; a shape's snapshot maps are shared by its
// nodes. Snapshots carry each ClusterLoadAssignment and Cluster as a
// stand-in holding the bytes the hash was made from (hash.go standIn), so a
// SotW push that re-sends every assignment of every affected proxy, or a
// connect that sends every cluster, copies bytes instead of marshalling
// each shared object once per stream; ConfigDump decodes them. BenchmarkPush measures a push at 1,000 and 5,000 proxies.
//
// # Nodes
//
// The status callbacks see a node when its stream's first request names it
// (node.id = mesh.NodeID(workload, namespace)). Its snapshot is built right
// then, on that stream's goroutine and before the stream answers the
// request, so the first response does not wait for the next push.
//
// Admission (admit.go, WithMaxConnecting): before its snapshot is built a
// joining node takes one of a bounded number of slots, waiting on its
// stream's goroutine (until the stream or the server ends) when all are
// taken. status frees the slot once the node has answered (ACK or NACK)
// the first response of every type it subscribed to that has resources in
// its first snapshot (subscriptions are recorded as the requests come, in
// stream order, so an EDS subscription sent after the CDS ACK is waited
// for), when its last stream closes, or after a hold bound. So a connect
// burst holds a bounded number of first configurations in memory
// (marshalled, then queued in gRPC until the client reads them) instead of
// one per connecting proxy. When a burst of at least the bound ends (no
// node waits or holds a slot), Run's goroutine calls the WithReturnMemory
// function once (the daemon's returns the freed heap to the OS). A node id with no
// workload in the registry gets an empty snapshot until one appears; before
// the first registry state no node gets anything. When a node's last stream
// closes its snapshot is dropped (unless a new stream of the node joined
// meanwhile).
//
// Goroutines: Run owns the debouncer and Push runs on it; the callbacks run
// on the ADS streams' goroutines. One mutex serializes building snapshots;
// the status has its own and never holds it while calling back. When Run
// returns, every ADS stream ends (its handler returns), so that a graceful
// gRPC stop completes. An admission slot's hold bound is a
// time.AfterFunc timer, stopped when the slot is freed.
//
// # Identity
//
// With WithAuthenticator (the daemon's default), a guard wraps the status
// callbacks: OnStreamOpen/OnDeltaStreamOpen authenticate the stream's
// bearer token into a node id (Unauthenticated otherwise) and every
// request's node.id must be that node (PermissionDenied otherwise; both
// logged). A refused stream never reaches status, so it is never connected
// and never gets a snapshot.
//
// SetCertificate (the CA's issued hook) records the latest chain issued to
// a node and SetTrustBundle the bundle; both take a new push number and
// re-sync the affected connected nodes at once, on the caller's goroutine
// under the snapshot mutex. Each node's snapshot carries SDS Secrets
// "default" (its chain, no key) and "ROOTCA" (the bundle), hashed and
// versioned like the other types. Certificates lists them for
// /debug/certs.
//
// # Streams (ads.go)
//
// Each ADS stream is its gRPC handler goroutine plus a receiver goroutine
// that only reads requests and hands them over one at a time (it ends with
// the stream). The handler handles a request (callbacks first: guard,
// status), then sends, in typeURLs' order (clusters before endpoints
// before listeners before routes, SotW and delta alike), a response for
// every subscribed type that has something to send, no response in
// flight and no type it depends on (dependsOn: the xDS make-before-break
// order) subscribed and not yet sent at the snapshot's version; the same
// when wake signals a new snapshot of its node. A response is recorded
// (status, observer) once its Send returned. Requests are bounded
// (WithMaxSubscriptions names per type, maxNameLen, maxDetailLen). A push
// never blocks on a stream: it stores the node's snapshot in snapshots and
// signals wake (a one-slot channel); a slow proxy holds up only its own
// handler, in Send, and gets the latest snapshot once it has answered. A
// stream keeps per type its subscription (shared name strings), the nonce
// and version of its last response and, for delta, the version map of
// that response (the snapshot's own map, not a copy). The ADS protocol
// rules it follows are listed in docs/architecture.md ("The ADS protocol
// as the server speaks it").
//
// # Status
//
// Proxies lists each connected node with, per type URL, the last version
// sent, the last version ACKed and the error_detail of its last NACK
// (cleared by a later ACK); ConfigDump renders a node's current snapshot.
// The debug package serves both as JSON.
//
// # Metrics
//
// WithObserver gets every response sent (type, SotW or delta, wire size),
// every NACK, and each push's latency: Update stamps the first change since
// the last push; the push expects, of every node it changed (not a node's
// first snapshot), an ACK of its version (or a later one) for each changed
// non-empty type; the ackTracker (metrics.go, its own lock, fed by status
// outside status's lock) reports the push when the last such ACK arrives
// or the last waiting node disconnects. The push records what it expects
// before it publishes the snapshot: a stream may answer at once and the
// ACK may arrive before the push has moved on.
package xds
