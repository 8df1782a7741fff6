// Package outbound is the sidecar's outbound listener: the HTTP proxy the
// app sends its requests to (LDS listener "outbound", <ip>:15001).
//
// Request path: the app sends either an absolute-form request, using the
// sidecar as its HTTP proxy (GET http://payment.shop:8080/x), or an
// origin-form request with a Host header; net/http gives both as r.Host.
// The handler loads the current router.Table (one atomic load; the table is
// immutable), takes the outbound listener's chain, finds the virtual host by
// the exact lower-cased Host, the first matching route, its cluster, and an
// endpoint from the cluster's picker, removes any mesh header the app tried
// to send (x-weft-target-port, x-weft-peer-identity), and hands the request
// to proxy.Forwarder, whose transport tunnels it to the peer sidecar (h2c)
// or sends it directly (HTTP/1.1).
//
// The sidecar answers itself, with a "weft: ..." text body: 404 when no
// virtual host or route matches, 503 before the first configuration, when a
// route's cluster is gone or the cluster has no healthy endpoint, 502 when
// the upstream cannot be reached, 405 for CONNECT (not supported yet).
//
// Goroutines: net/http's server runs one goroutine per connection (HTTP/1.1)
// or per stream (h2c); the handler runs on it and blocks until the response
// is copied. Nothing here owns a goroutine; the sidecar binds, serves and
// drains the server (NewServer) as LDS says.
package outbound
