// Package cpconn is the sidecar's HTTP/2 connection to the control plane's
// gRPC port (15012): an http.Transport for the ADS stream (xdsclient) and
// the CA's CreateCertificate (identity), which speak the gRPC protocol over
// it through connectrpc.com/connect, so the sidecar does not link grpc-go.
// The control plane's servers are grpc-go; connect's gRPC protocol is the
// same on the wire.
//
// The transport is HTTP/2 only: TLS 1.3 with ALPN h2 when the caller gives
// a tls.Config (the sidecar's secure channel: the control plane's SPIFFE ID
// verified at every handshake), else cleartext HTTP/2 with prior knowledge
// (the plaintext mode of local tests). One TCP connection carries both
// clients' calls. A connection that receives nothing for PingIdle is sent
// an HTTP/2 PING, and is closed when no answer comes within PingTimeout, so
// a control plane that vanished without closing the connection (a node
// lost, a partition) ends the ADS stream within about half a minute, and
// the xDS client reconnects with its backoff. A failed dial ends the call
// at once (Unavailable); the callers retry with their own backoff.
//
// Bearer adds the credential to every request, read at each one (a rotated
// token file is picked up). Nothing here owns a goroutine of its own: the
// transport's connection goroutines end with CloseIdleConnections and the
// calls' contexts.
package cpconn
