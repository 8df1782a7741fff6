package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzValidateCSR")

// FuzzValidateCSR feeds arbitrary DER to ValidateCSR. Whatever it accepts
// must meet every rule the CA signs under; nothing may panic. The seed
// corpus is in testdata/fuzz/FuzzValidateCSR (go test -fuzz=FuzzValidateCSR
// -fuzztime=30s ./ca to explore).
func FuzzValidateCSR(f *testing.F) {
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, id, err := ValidateCSR(testTD, der)
		if err != nil {
			if csr != nil {
				t.Fatal("ValidateCSR returned a CSR with an error")
			}
			return
		}
		pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("accepted key %T", csr.PublicKey)
		}
		if len(csr.URIs) != 1 || len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) != 0 {
			t.Fatalf("accepted SANs %v %v %v %v", csr.URIs, csr.DNSNames, csr.IPAddresses, csr.EmailAddresses)
		}
		if !id.MemberOf(testTD) || csr.URIs[0].String() != id.String() {
			t.Fatalf("accepted %s for URI %s", id, csr.URIs[0])
		}
		ns, sa, err := mesh.ParseSPIFFEPath(id.Path())
		if err != nil || mesh.SPIFFEID(testTD.Name(), ns, sa) != id.String() {
			t.Fatalf("accepted a non-Weft path %s", id.Path())
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a bad signature: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus when asked
// (go test -run TestWriteFuzzSeeds -update-fuzz-seeds ./ca).
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("seed corpus is checked in; pass -update-fuzz-seeds to rewrite it")
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := "spiffe://cluster.local/ns/shop/sa/payment"
	seeds := map[string][]byte{
		"valid":             spiffeCSR(t, p256(t), "shop", "payment"),
		"rsa":               csrDER(t, rsaKey, x509.CertificateRequest{URIs: uris(t, good)}),
		"p384":              csrDER(t, p384(t), x509.CertificateRequest{URIs: uris(t, good)}),
		"extra-dns":         csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good), DNSNames: []string{"a.b"}}),
		"two-uris":          csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, good, good)}),
		"other-trustdomain": csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "spiffe://evil.example/ns/shop/sa/payment")}),
		"bad-path":          csrDER(t, p256(t), x509.CertificateRequest{URIs: uris(t, "spiffe://cluster.local/ns/shop")}),
		"no-san":            csrDER(t, p256(t), x509.CertificateRequest{}),
		"empty":             {},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateCSR")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, der := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(der)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
