package xds

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/api/mesh"
)

// Certificates and the trust bundle over SDS (docs/architecture.md,
// "Certificates over SDS"): the CA tells the server every chain it issues
// (SetCertificate) and every change of the bundle (SetTrustBundle); each
// node's snapshot carries the latest chain issued to it as Secret
// mesh.SecretWorkloadCert and the bundle as Secret mesh.SecretRootCA,
// versioned like the other types. Neither holds a private key.

// issuedCert is the latest chain issued to a node.
type issuedCert struct {
	chainPEM []byte
	leaf     *x509.Certificate
	secret   *tlsv3.Secret // "default", made once per issued chain
}

// CertStatus is one proxy's latest certificate, as GET /debug/certs lists
// it (never a key).
type CertStatus struct {
	Proxy     string    `json:"proxy"`
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
}

// SetCertificate records the chain (leaf first, PEM) the CA issued to node
// and pushes it to the node at once if it is connected.
func (s *Server) SetCertificate(node string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("xds: certificate of " + node + ": empty chain")
	}
	c := issuedCert{chainPEM: encodePEM(chain), leaf: chain[0]}
	c.secret = &tlsv3.Secret{
		Name: mesh.SecretWorkloadCert,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineBytes(c.chainPEM),
		}},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certMu.Lock()
	s.certs[node] = c
	s.certMu.Unlock()
	if n, ok := s.nodes[node]; ok {
		// A new push number, so the changed type gets a new version.
		s.seq++
		s.syncNode(node, n)
	}
	return nil
}

// SetTrustBundle replaces the trust bundle (every root, several during a
// root rotation) and pushes it to every connected node when it changed.
func (s *Server) SetTrustBundle(roots []*x509.Certificate) {
	b := encodePEM(roots)
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(b) == string(s.bundle) {
		return
	}
	s.bundle = b
	s.rootSecret = nil
	if len(b) > 0 {
		s.rootSecret = &tlsv3.Secret{
			Name: mesh.SecretRootCA,
			Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inlineBytes(b),
			}},
		}
	}
	s.seq++
	changed := 0
	for id, n := range s.nodes {
		if s.syncNode(id, n) {
			changed++
		}
	}
	s.log.Info("xds: trust bundle pushed", "roots", len(roots), "proxies", len(s.nodes), "changed", changed)
}

// Certificates lists the latest unexpired certificate of every proxy the
// CA issued one to, sorted by proxy.
func (s *Server) Certificates() []CertStatus {
	now := s.now()
	s.certMu.RLock() // not s.mu: /metrics and /debug/certs must not wait for a push
	defer s.certMu.RUnlock()
	out := make([]CertStatus, 0, len(s.certs))
	for node, c := range s.certs {
		if now.After(c.leaf.NotAfter) {
			continue
		}
		id := ""
		if len(c.leaf.URIs) > 0 {
			id = c.leaf.URIs[0].String()
		}
		out = append(out, CertStatus{
			Proxy: node, Identity: id, Serial: c.leaf.SerialNumber.Text(16),
			NotBefore: c.leaf.NotBefore.UTC(), NotAfter: c.leaf.NotAfter.UTC(),
		})
	}
	slices.SortFunc(out, func(a, b CertStatus) int { return strings.Compare(a.Proxy, b.Proxy) })
	return out
}

// secrets are a node's SDS Secrets, sorted by name; s.mu is held.
func (s *Server) secrets(node string) []types.Resource {
	var out []types.Resource
	// Sorted by name: "ROOTCA" < "default". The objects are made once per
	// bundle and per issued chain, so an unchanged secret is the same
	// object (syncNode compares them by identity).
	if s.rootSecret != nil {
		out = append(out, s.rootSecret)
	}
	if c, ok := s.certs[node]; ok {
		out = append(out, c.secret)
	}
	return out
}

func inlineBytes(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

func encodePEM(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// validateSecrets checks the Secrets like every other resource.
func validateSecrets(items []types.Resource) error {
	for _, it := range items {
		if err := it.(*tlsv3.Secret).ValidateAll(); err != nil {
			return fmt.Errorf("xds: secret %q: %w", it.(*tlsv3.Secret).GetName(), err)
		}
	}
	return nil
}

// IssuedLeaves returns the latest unexpired leaf certificate of every
// proxy the CA issued one to, by node id (the map is the caller's).
func (s *Server) IssuedLeaves() map[string]*x509.Certificate {
	now := s.now()
	s.certMu.RLock()
	defer s.certMu.RUnlock()
	out := make(map[string]*x509.Certificate, len(s.certs))
	for node, c := range s.certs {
		if !now.After(c.leaf.NotAfter) {
			out[node] = c.leaf
		}
	}
	return out
}
