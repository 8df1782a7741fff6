package ca

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
)

// Identity is what a credential proves: the workload's namespace and service
// account (which make its SPIFFE ID) and the workload itself (which names its
// sidecar: mesh.NodeID(Workload, Namespace)).
type Identity struct {
	Namespace      string
	ServiceAccount string
	Workload       string
}

// SPIFFEID returns the identity's SPIFFE ID in trust domain td, or an error
// when the namespace or service account cannot be a SPIFFE path segment.
func (i Identity) SPIFFEID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	if i.Namespace == "" || i.ServiceAccount == "" {
		return spiffeid.ID{}, fmt.Errorf("ca: identity %+v: namespace and service account are required", i)
	}
	id, err := spiffeid.FromString(mesh.SPIFFEID(td.Name(), i.Namespace, i.ServiceAccount))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: identity %+v: %w", i, err)
	}
	return id, nil
}

// String names the identity in logs.
func (i Identity) String() string {
	return mesh.NodeID(i.Workload, i.Namespace) + " (sa " + i.ServiceAccount + ")"
}

// Authenticator checks a credential and says which identity it proves. The
// join-token store (JoinTokens) is the local implementation; the Kubernetes
// one (TokenReview of a projected ServiceAccount token) comes with the kube
// registry. Implementations return an error wrapping ErrUnauthenticated for a
// credential they refuse, and never log or return the credential itself.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (Identity, error)
}

// Errors the CA's refusals wrap; the gRPC server maps them to status codes
// (Unauthenticated, PermissionDenied, InvalidArgument).
var (
	// ErrUnauthenticated: the credential is missing, unknown, expired or
	// revoked.
	ErrUnauthenticated = errors.New("credential not valid")
	// ErrIdentityMismatch: the CSR asks for an identity the credential does
	// not prove.
	ErrIdentityMismatch = errors.New("csr asks for an identity the credential does not prove")
	// ErrInvalidCSR: the CSR breaks the rules (key type, SANs, trust domain,
	// signature).
	ErrInvalidCSR = errors.New("invalid csr")
)
