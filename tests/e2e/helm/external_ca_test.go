package helm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/kubeharness"
)

// userCA is a CA an operator brings: a root and, under it, the
// intermediate that signs (cert-manager's tls.crt/tls.key/ca.crt layout).
type userCA struct {
	rootPEM, interPEM, interKeyPEM []byte
	root, inter                    *x509.Certificate
}

func newUserCA(t *testing.T, trustDomain string) userCA {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, key
	}
	serial := func() *big.Int {
		n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	td := &url.URL{Scheme: "spiffe", Host: trustDomain}
	now := time.Now()
	root, rootKey := mk(&x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"Example Corp"}, CommonName: "Example Corp Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}, nil, nil)
	inter, interKey := mk(&x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"Example Corp"}, CommonName: "Example Corp Weft Issuing CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
		URIs: []*url.URL{td},
	}, root, rootKey)
	keyDER, err := x509.MarshalECPrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	return userCA{
		rootPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		interPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}),
		interKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		root:        root, inter: inter,
	}
}

// TestExternalCA installs the chart with charts/weft/ci/external-ca-values.yaml
// on the real API server, puts the operator's CA in the Secret those values
// name (tls.crt = an intermediate, tls.key, ca.crt = its root), and runs the
// control plane with exactly the args the chart rendered, the Secret
// written out where the rendered volume mounts it. The control plane must
// sign with that CA: its own xDS serving certificate verifies against the
// operator's root through the operator's intermediate and carries the
// values' trust domain, and the trust bundle it publishes in an enabled
// namespace is the operator's ca.crt.
func TestExternalCA(t *testing.T) {
	h := helmBin(t)
	c := kubeharness.Start(t, kubeharness.WithoutCRDs())
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	valuesFile := filepath.Join(chartDir(t), "ci", "external-ca-values.yaml")
	var vals struct {
		CA struct {
			External struct {
				SecretName string `json:"secretName"`
			} `json:"external"`
		} `json:"ca"`
		Mesh struct {
			TrustDomain string `json:"trustDomain"`
		} `json:"mesh"`
	}
	raw, err := os.ReadFile(valuesFile) //nolint:gosec // G304: the chart's own values file.
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &vals); err != nil || vals.CA.External.SecretName == "" || vals.Mesh.TrustDomain == "" {
		t.Fatalf("%s: %v (secretName %q, trustDomain %q)", valuesFile, err, vals.CA.External.SecretName, vals.Mesh.TrustDomain)
	}
	uca := newUserCA(t, vals.Mesh.TrustDomain)

	if err := c.CreateNamespace(ctx, releaseNS, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets(releaseNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: vals.CA.External.SecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": uca.interPEM, "tls.key": uca.interKeyPEM, "ca.crt": uca.rootPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := kubeharness.RandomLoopback()
	port, err := kubeharness.FreePort(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	r := &release{
		t: t, c: c, h: &helmRunner{bin: h, home: t.TempDir(), kubeconfig: c.Kubeconfig}, chart: chartDir(t), ip: ip,
		addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)),
	}
	if _, _, err := r.h.run(ctx, append([]string{"install", "weft", r.chart, "-f", valuesFile}, r.values()...)...); err != nil {
		t.Fatal(err)
	}
	objs := r.manifest(ctx)
	strictDryRun(ctx, t, c, objs)
	if err := c.CreateNamespace(ctx, "shop", map[string]string{mesh.LabelInject: mesh.InjectEnabled}); err != nil {
		t.Fatal(err)
	}

	cpBin := binary(t, mesh.BinaryControlPlane, "github.com/weftmesh/weft/control-plane/cmd/weft-control-plane")
	_, xdsAddr, args := r.startControlPlaneXDS(ctx, objs, cpBin)
	t.Logf("control plane runs with the rendered args and the Secret at the rendered mount: %q", args)

	// 1. The xDS port's certificate was issued by the operator's CA.
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(uca.root)
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	waitFor(ctx, t, "the xDS port's TLS certificate", func() (bool, string) {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // G402: the chain is verified below, against the operator's root.
		conn, err := d.DialContext(ctx, "tcp", xdsAddr)
		if err != nil {
			return false, err.Error()
		}
		defer func() { _ = conn.Close() }()
		chain = conn.(*tls.Conn).ConnectionState().PeerCertificates
		leaf = chain[0]
		return true, ""
	})
	for _, ic := range chain[1:] {
		inters.AddCert(ic)
	}
	inters.AddCert(uca.inter) // as a client holding only the root and the bundle would
	verified, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("the control plane's certificate (issuer %q) does not verify against the operator's root: %v", leaf.Issuer, err)
	}
	if len(verified[0]) < 3 || !verified[0][1].Equal(uca.inter) || !verified[0][len(verified[0])-1].Equal(uca.root) {
		t.Errorf("chain %v: want leaf <- operator's intermediate <- operator's root", subjects(verified[0]))
	}
	if !bytes.Equal(leaf.AuthorityKeyId, uca.inter.SubjectKeyId) {
		t.Errorf("leaf authority key id %x, want the intermediate's %x (signed by another key)", leaf.AuthorityKeyId, uca.inter.SubjectKeyId)
	}
	wantID := mesh.SPIFFEID(vals.Mesh.TrustDomain, mesh.ControlPlaneNamespace, mesh.ControlPlaneServiceAccount)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID {
		t.Errorf("leaf URIs %v, want %s", leaf.URIs, wantID)
	}
	t.Logf("xDS certificate %s, chain %v", leaf.URIs, subjects(verified[0]))

	// 2. The trust bundle it publishes is the operator's ca.crt.
	waitFor(ctx, t, "trust bundle in shop = the operator's ca.crt", func() (bool, string) {
		cm, err := c.Client.CoreV1().ConfigMaps("shop").Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		rest, n := []byte(cm.Data[mesh.TrustBundleKey]), 0
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if !bytes.Equal(b.Bytes, uca.root.Raw) {
				return false, "bundle holds a certificate that is not the operator's root:\n" + cm.Data[mesh.TrustBundleKey]
			}
			n++
		}
		return n > 0, "no bundle yet"
	})
}

func subjects(cs []*x509.Certificate) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
