// Package sidecar assembles the Weft sidecar: Run wires the xDS client to
// the routing table, binds the listeners LDS asks for, and serves admin and
// health, until its context ends.
//
// # The request path
//
//	app ──HTTP──▶ outbound listener (<ip>:15001, HTTP proxy; package outbound)
//	      route by Host: router.Table (immutable, swapped atomically)
//	      cluster ─▶ lb.Picker (round robin) ─▶ endpoint
//	      transport: h2c to <peer ip>:<tunnel_port> with x-weft-target-port,
//	                 or HTTP/1.1 to an endpoint without a sidecar
//	peer ──h2c──▶ inbound listener (<ip>:15006; package inbound)
//	      filter chain by target port ─▶ inbound|<port>|| ─▶ app (HTTP/1.1 pool)
//
// # Configuration flow
//
// xdsclient.Client (one goroutine) accepts a response, then calls the
// validator, which compiles the candidate snapshot with router.Compile (a
// compile error NACKs the response; the last accepted candidate's table
// lends the clusters that did not change, so a configuration that warms
// over several responses is not compiled whole each time), then, when the
// snapshot is published,
// the update handler, which stores the compiled table in an
// atomic.Pointer[router.Table] and nudges the listener manager. Requests
// load the pointer once and see one whole configuration; nothing on the
// request path takes a lock.
//
// # Goroutines
//
// Run owns one errgroup: the xDS client's Run; the listener manager, which
// alone binds, rebinds and drains the outbound and inbound servers (their
// accepted connections are sidecar/internal/rawtcp's, whose reads and
// writes do not wake the runtime's sysmon thread)
// (h1server.Server for HTTP/1.x, handing HTTP/2 to h2server.Server, or
// net/http's server with Config.HTTP2Server "net/http"; each
// server's Serve runs in a goroutine the manager waits for); and the admin
// and health servers. When the context ends, readiness turns false, the
// listeners stop accepting and drain in-flight requests for up to
// Config.DrainTimeout, then admin and health stop and Run returns. The
// transport's HTTP/2 connections (sidecar/h2client: a read loop each, a
// body writer per streamed request body) are closed, and their
// goroutines waited for, as Run returns (transport.Mesh.Close);
// Config.HTTP2Client "net/http" has net/http's transport carry them.
package sidecar
