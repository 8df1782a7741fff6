// Package ca is the mesh's certificate authority: it holds the root of
// trust, authenticates workloads, and signs their X.509 SVIDs.
//
// # Root of trust
//
// Either generated or supplied:
//
//   - Generated: Open(ctx, td, NewDirStore(dir)) loads the material from the
//     store, or on first start generates a self-signed ECDSA P-256 root
//     (GenerateRoot, ten years) and saves it: ca-cert.pem, ca-key.pem and
//     root-certs.pem, each 0600, in a 0700 directory. A restart reloads the
//     same root; a key file others can read is refused. Store is an
//     interface so that a Kubernetes Secret store can come with the kube
//     registry.
//   - Supplied: New(td, material) with a root and its key, or an
//     intermediate, its key, its chain, and the roots it chains to (for a
//     cert-manager Secret: tls.crt, tls.key, ca.crt; LoadMaterialFiles
//     reads them). The signing certificate must be a CA whose key matches
//     and which chains to a root of the bundle.
//
// # Signing
//
// The flow of one request through Server.CreateCertificate:
//
//	metadata "authorization: Bearer <token>"
//	  -> Authenticator.Authenticate        -> Identity{Namespace, ServiceAccount, Workload}
//	  -> ParseCSRPEM, ValidateCSR          ECDSA P-256, exactly one SAN: a URI that is
//	                                       spiffe://<td>/ns/<ns>/sa/<sa>, self-signature valid
//	  -> CSR's ID == Identity's SPIFFE ID  otherwise refused (PermissionDenied) and logged
//	  -> Authority.sign                    our own template; nothing but the key comes from the CSR
//	  <- leaf + intermediates, every trusted root
//
// A certificate has a random 128-bit serial, NotBefore backdated by one
// minute (WithBackdate), NotAfter after the requested lifetime (default
// mesh.DefaultCertLifetime, WithLifetime; capped by WithMaxLifetime and by
// the signing certificate's own expiry), key usage digitalSignature, extended
// key usages serverAuth and clientAuth, and CA false. Every refusal is logged
// (slog, "ca: refused certificate request") with its reason class
// (unauthenticated, identity_mismatch, invalid_csr) and the error, never the
// credential.
//
// # Authentication
//
// Authenticator turns a credential into the Identity it proves. JoinTokens
// is the local one: weftctl up mints a 256-bit random token per workload
// (Mint), bound to that workload's identity, keeps only its SHA-256, and can
// hand the hashes to the control plane's process through a file (WriteFile,
// ReadJoinTokensFile). A token minted for workload A proves A's identity
// only: a CSR from workload B carrying A's token asks for B's SPIFFE ID and
// is refused. The Kubernetes authenticator (TokenReview of a projected
// ServiceAccount token) will implement the same interface. The identity's
// Workload names the sidecar (mesh.NodeID), so the xDS server can check that
// a sidecar subscribes only for its own node.
//
// # Root rotation without downtime
//
// The trust bundle can hold several roots. A sidecar trusts every root of
// the bundle it holds, so a root is replaced in three steps, each of which
// keeps every pair of sidecars able to talk:
//
//  1. Trust the new root. Make it (GenerateRoot, or have the PKI issue a
//     new root or intermediate) and call AddRoot(ctx, newRoot). The bundle
//     is now {old, new}; signing still uses the old root. Every issuance
//     and every SDS push from now on carries both roots. Wait until every
//     sidecar holds the new bundle: at most one certificate lifetime (each
//     renewal brings the bundle), or as soon as the SDS push is ACKed by
//     every proxy.
//  2. Sign with the new root. Call RotateSigner(ctx, newMaterial). It
//     refuses material that does not chain to a root already in the bundle,
//     so step 1 cannot be skipped by mistake. New SVIDs chain to the new
//     root; old SVIDs still verify, because the old root is still trusted,
//     and new SVIDs verify at sidecars that have the bundle of step 1. Wait
//     one full certificate lifetime (plus the backdate): then every SVID in
//     use was signed by the new root.
//  3. Retire the old root. Call RemoveRoot(ctx, oldRoot). It refuses to drop
//     the root the current signer chains to. The bundle is {new}.
//
// With a Store every step is saved, so a restart between steps resumes the
// rotation where it stopped.
//
// Operators run the steps against the control plane (with --ca-dir):
// `weftctl ca rotate-root --step add|activate|remove`, which calls POST
// /debug/ca/rotate-root?step=<step> on the loopback-only debug address.
// add generates the new root into <ca-dir>/next/ (so a restart between
// add and activate keeps it) and calls AddRoot; activate calls
// RotateSigner with it, removes next/ and re-issues the control plane's own
// certificate at once; remove calls RemoveRoot for every root the signer
// does not chain to, and is refused (409) while any proxy's latest
// certificate still chains to one of them, or while a root added by add
// waits in next/ (force=true overrides both; with next/ it abandons the
// rotation and drops the new root). Each
// step pushes the bundle to every proxy over SDS (Secret ROOTCA).
//
// # Control plane wiring
//
// Server.CreateCertificate calls the WithIssuedHook function with every
// signed chain; the control plane hands it to the xds server, which pushes
// it to that node as SDS Secret "default". AuthenticateContext reads the
// same bearer metadata for the ADS streams. TokenFile is the JoinTokens
// store behind --join-tokens, re-read when the file changes. With supplied material (no store), supply the
// new material at the next start instead of calling RotateSigner, after the
// bundle you supply has carried both roots for a certificate lifetime.
package ca
