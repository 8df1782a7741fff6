// Package cav1 is the mesh CA's gRPC API (weft.ca.v1): a sidecar sends a CSR
// for its own SPIFFE ID with its credential and gets back its certificate
// chain and the trust bundle. ca.pb.go (the messages) is generated from
// ca.proto by generate.sh; grpc-go's server and client of the service are in
// cav1grpc, so this package does not import grpc-go (the sidecar calls the
// service through connect's gRPC protocol with ProcedureCreateCertificate).
// Edit the protos, never the generated files.
package cav1

// ProcedureCreateCertificate is the gRPC method name (HTTP/2 path) of
// CertificateService.CreateCertificate, the same as
// cav1grpc.CertificateService_CreateCertificate_FullMethodName.
const ProcedureCreateCertificate = "/weft.ca.v1.CertificateService/CreateCertificate"

// The credential travels as gRPC metadata: MetadataAuthorization with the
// value BearerPrefix + token.
const (
	// MetadataAuthorization is the metadata key that carries the credential.
	MetadataAuthorization = "authorization"
	// BearerPrefix precedes the token in the metadata value.
	BearerPrefix = "Bearer "
)
