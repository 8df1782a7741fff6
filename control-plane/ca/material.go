package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultRootLifetime is the lifetime of a root the CA generates itself.
const DefaultRootLifetime = 10 * 365 * 24 * time.Hour

// Material is the CA's state in PEM: the certificate that signs SVIDs, its
// key, and the trust bundle. It is what a Store keeps and what a user
// supplies (for a cert-manager Secret: tls.crt, tls.key and ca.crt).
type Material struct {
	// CertChainPEM holds the signing CA certificate first, then the
	// intermediates above it, optionally ending with its root.
	CertChainPEM []byte
	// KeyPEM is the signing certificate's private key (PKCS#8, SEC 1 or
	// PKCS#1).
	KeyPEM []byte
	// BundlePEM holds every root the mesh trusts. When empty, the last
	// certificate of CertChainPEM must be a self-signed root, and the bundle
	// is that root alone.
	BundlePEM []byte
}

// LoadMaterialFiles reads user-supplied CA material: the certificate chain,
// the key and (optional, "" to skip) the trust bundle.
func LoadMaterialFiles(certChainFile, keyFile, bundleFile string) (Material, error) {
	var m Material
	var err error
	if m.CertChainPEM, err = os.ReadFile(certChainFile); err != nil {
		return Material{}, fmt.Errorf("ca: reading CA certificate chain: %w", err)
	}
	if m.KeyPEM, err = os.ReadFile(keyFile); err != nil {
		return Material{}, fmt.Errorf("ca: reading CA key: %w", err)
	}
	if bundleFile != "" {
		if m.BundlePEM, err = os.ReadFile(bundleFile); err != nil {
			return Material{}, fmt.Errorf("ca: reading trust bundle: %w", err)
		}
	}
	return m, nil
}

// signingCA is parsed, checked Material minus the bundle.
type signingCA struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // intermediates above cert, roots excluded
	root  *x509.Certificate   // the bundle root cert chains to
}

// parseMaterial checks m and returns its signer and roots: the signing
// certificate is a CA whose key matches, is valid at now, and chains to a
// root of the bundle.
func parseMaterial(m Material, now time.Time) (*signingCA, []*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(m.CertChainPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: CA certificate chain: %w", err)
	}
	key, err := parsePrivateKeyPEM(m.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: CA key: %w", err)
	}
	cert := certs[0]
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, nil, fmt.Errorf("ca: signing certificate %q is not a CA certificate", cert.Subject)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("ca: signing certificate %q lacks the certSign key usage", cert.Subject)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("ca: the CA key does not match signing certificate %q", cert.Subject)
	}
	if now.After(cert.NotAfter) {
		return nil, nil, fmt.Errorf("ca: signing certificate %q expired at %s", cert.Subject, cert.NotAfter.Format(time.RFC3339))
	}
	var roots []*x509.Certificate
	if len(bytes.TrimSpace(m.BundlePEM)) > 0 {
		if roots, err = ParseCertificatesPEM(m.BundlePEM); err != nil {
			return nil, nil, fmt.Errorf("ca: trust bundle: %w", err)
		}
	} else if last := certs[len(certs)-1]; isSelfSigned(last) {
		roots = []*x509.Certificate{last}
	} else {
		return nil, nil, errors.New("ca: no trust bundle given and the certificate chain does not end in a self-signed root")
	}
	for _, r := range roots {
		if !r.IsCA {
			return nil, nil, fmt.Errorf("ca: trust bundle certificate %q is not a CA", r.Subject)
		}
	}
	s := &signingCA{cert: cert, key: key}
	for _, c := range certs[1:] {
		if !isSelfSigned(c) {
			s.chain = append(s.chain, c)
		}
	}
	if s.root, err = verifyToRoot(s, roots, now); err != nil {
		return nil, nil, err
	}
	return s, roots, nil
}

// verifyToRoot checks that s.cert chains to one of roots and returns it.
func verifyToRoot(s *signingCA, roots []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime:   now,
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range s.chain {
		opts.Intermediates.AddCert(c)
	}
	chains, err := s.cert.Verify(opts)
	if err != nil {
		return nil, fmt.Errorf("ca: signing certificate %q does not chain to a root of the trust bundle: %w", s.cert.Subject, err)
	}
	c := chains[0]
	return c[len(c)-1], nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// GenerateRoot makes a new self-signed root (ECDSA P-256) for trust domain
// td, valid for lifetime (DefaultRootLifetime when 0) from now. The root
// carries the trust domain's SPIFFE ID (spiffe://<td>) as its URI SAN.
func GenerateRoot(td spiffeid.TrustDomain, lifetime time.Duration, now time.Time) (Material, error) {
	if lifetime <= 0 {
		lifetime = DefaultRootLifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Material{}, fmt.Errorf("ca: generating root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return Material{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"Weft"},
			// A distinct name per root keeps chain building unambiguous
			// while two roots are trusted during a rotation.
			CommonName: "Weft mesh root " + td.Name() + " " + now.UTC().Format("20060102T150405Z"),
		},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Material{}, fmt.Errorf("ca: creating root certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Material{}, fmt.Errorf("ca: encoding root key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return Material{
		CertChainPEM: certPEM,
		KeyPEM:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		BundlePEM:    certPEM,
	}, nil
}

// randomSerial returns a random, positive, non-zero 128-bit serial number.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("ca: serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}

// ParseCertificatesPEM parses every CERTIFICATE block of b; it fails on any
// other block type and when there is none.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(b)) > 0 {
		return nil, errors.New("trailing data after the PEM blocks")
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// EncodeCertificatesPEM encodes certs as concatenated CERTIFICATE blocks.
func EncodeCertificatesPEM(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported CA key type %T", key)
	}
}

func c2s(c *x509.Certificate) []*x509.Certificate { return []*x509.Certificate{c} }
