package cav1_test

import (
	"testing"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
)

// The hand-written procedure name the sidecar calls is the generated one.
func TestProcedureCreateCertificate(t *testing.T) {
	if cav1.ProcedureCreateCertificate != cav1grpc.CertificateService_CreateCertificate_FullMethodName {
		t.Fatalf("ProcedureCreateCertificate = %q, generated %q", cav1.ProcedureCreateCertificate, cav1grpc.CertificateService_CreateCertificate_FullMethodName)
	}
}
