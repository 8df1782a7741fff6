package mesh

// Identity and mTLS names (docs/architecture.md, "Identity and mTLS contract").
const (
	// SecretWorkloadCert is the SDS Secret holding a sidecar's certificate
	// chain (its private key never leaves the sidecar).
	SecretWorkloadCert = "default"
	// SecretRootCA is the SDS Secret holding the trust bundle.
	SecretRootCA = "ROOTCA"
	// ControlPlaneNamespace and ControlPlaneServiceAccount make up the
	// control plane's own SPIFFE ID, which sidecars authorize on the xDS
	// channel.
	ControlPlaneNamespace      = "weft-system"
	ControlPlaneServiceAccount = "weft-control-plane"
	// AnnotationMTLSMode on a workload or namespace overrides the mesh-wide
	// mTLS mode: STRICT or PERMISSIVE.
	AnnotationMTLSMode = "weft.dev/mtls-mode"
	// AuthorizationMetadata is the gRPC metadata key of the credential
	// (Bearer token) on every call to the control plane.
	AuthorizationMetadata = "authorization"
)
