// Package inbound is the sidecar's inbound listener: where peer sidecars'
// tunnels arrive (LDS listener "inbound", <ip>:15006), serving h2c and
// HTTP/1.1.
//
// Request path: the handler reads the workload port the request is for from
// mesh.HeaderTargetPort (with iptables capture the original destination
// will give it), loads the current router.Table (one atomic load), selects
// the inbound listener's filter chain for that port, routes by the chain's
// inline route configuration (domains "*", prefix "/") to the port's
// inbound cluster, removes the mesh headers, and forwards to the cluster's
// static endpoint, the app, over pooled keep-alive HTTP/1.1
// (proxy.Forwarder with the sidecar's transport; the app endpoint has no
// tunnel port, so it is dialled directly).
//
// The sidecar answers itself, with a "weft: ..." text body: 421 when the
// request carries no target port or the port has no filter chain (this
// workload does not serve it), 400 for a malformed port, 404 when no route
// matches, 503 when the app cluster is missing, 503 with
// mesh.HeaderAppUnreachable before the first configuration (or after the
// workload left the registry) and when the connection to the app fails
// (the request never reached it: the caller's sidecar retries it
// on another endpoint; the app's own responses never carry that header),
// 502 when the app fails after it was reached.
//
// Goroutines: the server (NewServer: h1server for HTTP/1.x, handing
// HTTP/2 over mTLS and h2c to net/http's server, or to h2server when the
// sidecar sets h1server.Server.HTTP2, as it does by default) runs one
// goroutine per HTTP/1.1 or HTTP/2 connection and one per HTTP/2 stream;
// the handler runs on it. The connection's goroutine is the one Listener
// classified it on (the sidecar passes h1server.Server.ServeConn to
// NewListener), not a second one started by the server's accept loop. The sidecar binds, serves and drains the server as LDS says (the
// egress gateway serves with NewHTTPServer, net/http's alone).
package inbound
