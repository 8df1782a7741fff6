// Package cav1 is the mesh CA's gRPC API (weft.ca.v1): a sidecar sends a CSR
// for its own SPIFFE ID with its credential and gets back its certificate
// chain and the trust bundle. ca.pb.go and ca_grpc.pb.go are generated from
// ca.proto by generate.sh; edit the proto, never the generated files.
package cav1

// The credential travels as gRPC metadata: MetadataAuthorization with the
// value BearerPrefix + token.
const (
	// MetadataAuthorization is the metadata key that carries the credential.
	MetadataAuthorization = "authorization"
	// BearerPrefix precedes the token in the metadata value.
	BearerPrefix = "Bearer "
)
