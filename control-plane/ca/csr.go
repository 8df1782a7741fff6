package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
)

// maxCSRSize bounds a CSR we are willing to parse (a P-256 CSR with one URI
// SAN is about 300 bytes of DER).
const maxCSRSize = 16 << 10

// oidSubjectAltName is the subjectAltName extension (RFC 5280 4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// ParseCSRPEM decodes one PEM "CERTIFICATE REQUEST" block and returns its DER.
func ParseCSRPEM(b []byte) ([]byte, error) {
	if len(b) > maxCSRSize*2 {
		return nil, fmt.Errorf("%w: csr is %d bytes, more than %d", ErrInvalidCSR, len(b), maxCSRSize*2)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrInvalidCSR)
	}
	if blk, _ := pem.Decode(rest); blk != nil {
		return nil, fmt.Errorf("%w: more than one PEM block", ErrInvalidCSR)
	}
	return block.Bytes, nil
}

// ValidateCSR parses a DER CSR and checks everything the CA requires of it:
// a valid self-signature, an ECDSA P-256 public key, exactly one subject
// alternative name, which is a URI, which is a Weft SPIFFE ID
// (spiffe://<td>/ns/<ns>/sa/<sa>) in trust domain td. Nothing else in the
// CSR (subject, requested extensions) is copied into the certificate. Errors
// wrap ErrInvalidCSR.
func ValidateCSR(td spiffeid.TrustDomain, der []byte) (*x509.CertificateRequest, spiffeid.ID, error) {
	if len(der) > maxCSRSize {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: csr is %d bytes, more than %d", ErrInvalidCSR, len(der), maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: workload key must be ECDSA P-256, got %s", ErrInvalidCSR, keyName(csr.PublicKey))
	}
	if err := checkOnlyOneURISAN(csr); err != nil {
		return nil, spiffeid.ID{}, err
	}
	id, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: URI SAN %q: %w", ErrInvalidCSR, csr.URIs[0], err)
	}
	if !id.MemberOf(td) {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %s is not in trust domain %q", ErrInvalidCSR, id, td.Name())
	}
	if _, _, err := mesh.ParseSPIFFEPath(id.Path()); err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %s: %w", ErrInvalidCSR, id, err)
	}
	return csr, id, nil
}

// checkOnlyOneURISAN reads the raw subjectAltName extension, so that name
// types Go does not surface (otherName, directoryName, registeredID, ...)
// are refused too.
func checkOnlyOneURISAN(csr *x509.CertificateRequest) error {
	var sans []asn1.RawValue
	found := false
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if found {
			return fmt.Errorf("%w: more than one subjectAltName extension", ErrInvalidCSR)
		}
		found = true
		rest, err := asn1.Unmarshal(ext.Value, &sans)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("%w: malformed subjectAltName extension", ErrInvalidCSR)
		}
	}
	switch {
	case len(csr.DNSNames) > 0:
		return fmt.Errorf("%w: DNS SANs %q not allowed, only one SPIFFE ID", ErrInvalidCSR, csr.DNSNames)
	case len(csr.IPAddresses) > 0:
		return fmt.Errorf("%w: IP SANs %v not allowed, only one SPIFFE ID", ErrInvalidCSR, csr.IPAddresses)
	case len(csr.EmailAddresses) > 0:
		return fmt.Errorf("%w: email SANs %q not allowed, only one SPIFFE ID", ErrInvalidCSR, csr.EmailAddresses)
	case len(sans) != 1 || len(csr.URIs) != 1:
		return fmt.Errorf("%w: want exactly one subjectAltName, a URI SAN; got %d names (%d URIs)", ErrInvalidCSR, len(sans), len(csr.URIs))
	case sans[0].Class != asn1.ClassContextSpecific || sans[0].Tag != 6:
		return fmt.Errorf("%w: the subjectAltName is not a URI", ErrInvalidCSR)
	}
	return nil
}

func keyName(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case nil:
		return "no key"
	default:
		return fmt.Sprintf("%T", pub)
	}
}
