// Package identity is the workload side of the mesh's identity: the
// sidecar's private key, its X.509 SVID and trust bundle, their renewal, and
// the mTLS configs of the sidecar-to-sidecar hop.
//
// # Flow
//
//	New(spiffeID)            makes an ECDSA P-256 key in memory; it is never written anywhere
//	Run(ctx, CA)             CSR (one URI SAN: the SPIFFE ID) + credential -> CA -> chain + bundle
//	                         -> Apply: bundle installed, chain verified against it and matched to
//	                            one of our keys by public key; renewal scheduled at ~50% ± 5% of
//	                            the remaining lifetime; failures retried with exponential backoff
//	SetX509SVID / SetBundle  the same install path for SDS pushes (a Secret's certificate chain,
//	                         a Secret's trusted CA): a chain whose key is not ours is refused
//	GetX509SVID / GetX509BundleForTrustDomain
//	                         go-spiffe sources read by the TLS stack at every handshake
//	ServerTLSConfig / ClientTLSConfig / ClientTLSConfigALPN
//	                         go-spiffe tlsconfig.MTLS{Server,Client}Config + TLS 1.3; ALPN h2 or
//	                         http/1.1 on the server, the one offered on the client, nothing
//	                         else accepted; refusals logged; PeerID reads the verified peer
//
// # Keys
//
// A Manager holds at most two keys: the current key (of the installed
// certificate) and a pending key (of the outstanding CSR). CSR makes the
// pending key on its first call after a certificate was installed and reuses
// it for retries; a chain for the pending key promotes it, so every renewal
// rotates the key. Whichever path brings a chain (the CA's response or an
// SDS Secret), it must match one of the two keys and verify against the
// bundle, or it is refused and the current certificate stays.
//
// # Goroutines
//
// Run is the only goroutine the package asks for; its caller owns it (an
// errgroup in the sidecar's Run) and stops it by cancelling ctx. Run wakes
// at the renewal point, on a certificate pushed from outside (Changed), or
// when a retry's backoff ends. Handshakes read the current certificate under
// a read lock, so a rotation never touches live connections: a connection
// keeps the keys it negotiated, and the next handshake gets the new
// certificate.
//
// # When the CA is down
//
// Renewal is retried with exponential backoff (WithBackoff: 500 ms doubling
// to 30 s, ±20% jitter) for as long as it takes; the current certificate is
// presented until it expires, after which GetX509SVID fails (handshakes fail
// locally with a clear error rather than presenting an expired
// certificate). When the CA is back the next retry succeeds; nothing
// restarts. Status reports serial, expiry, renewal point and the failure
// count, never the key.
package identity
