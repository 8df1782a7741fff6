package xds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

// tokenAuth maps the "authorization" metadata value to a node id.
type tokenAuth map[string]string

func (a tokenAuth) AuthenticateNode(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 1 {
		if node, ok := a[v[0]]; ok {
			return node, nil
		}
	}
	return "", errors.New("unknown credential")
}

func startAuthServer(t *testing.T) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := New(meshconfig.Default(), WithAuthenticator(tokenAuth{"tok-payment": "payment-1.shop"}))
	g := grpc.NewServer()
	s.Register(g)
	var lc net.ListenConfig
	lis, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(func() { s.cancelStreams(); g.Stop() })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return s, cc
}

func TestStreamAuthentication(t *testing.T) {
	s, cc := startAuthServer(t)
	s.Update(parse(t, meshYAML))
	s.Push()
	cases := []struct {
		name  string
		token string
		node  string
		delta bool
		want  codes.Code
	}{
		{"no credential", "", "payment-1.shop", false, codes.Unauthenticated},
		{"unknown credential", "tok-nobody", "payment-1.shop", false, codes.Unauthenticated},
		{"another node's config", "tok-payment", "order-1.shop", false, codes.PermissionDenied},
		{"another node's config, delta", "tok-payment", "order-1.shop", true, codes.PermissionDenied},
		{"own config", "tok-payment", "payment-1.shop", false, codes.OK},
		{"own config, delta", "tok-payment", "payment-1.shop", true, codes.OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if c.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.token)
			}
			client := discovery.NewAggregatedDiscoveryServiceClient(cc)
			var err error
			if c.delta {
				var st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
				if st, err = client.DeltaAggregatedResources(ctx); err == nil {
					_ = st.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: c.node}, TypeUrl: resource.ClusterType})
					_, err = st.Recv()
				}
			} else {
				var st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
				if st, err = client.StreamAggregatedResources(ctx); err == nil {
					_ = st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: c.node}, TypeUrl: resource.ClusterType})
					_, err = st.Recv()
				}
			}
			if got := grpcstatus.Code(err); got != c.want {
				t.Fatalf("stream as %s with %q: %v, want %s", c.node, c.token, err, c.want)
			}
			if c.want != codes.OK {
				if _, ok := proxyStatus(s, c.node); ok {
					t.Fatalf("refused node %s is listed as connected", c.node)
				}
			}
		})
	}
}

func testCert(t *testing.T, id string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "t"}, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secretsIn(t *testing.T, r *discovery.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range r.GetResources() {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		out[s.GetName()] = s
	}
	return out
}

func TestSecretsInSnapshot(t *testing.T) {
	s, cc := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	root1, root2 := testCert(t, "spiffe://cluster.local"), testCert(t, "spiffe://cluster.local")
	s.SetTrustBundle([]*x509.Certificate{root1})
	s.Update(parse(t, meshYAML))
	s.Push()
	leaf := testCert(t, "spiffe://cluster.local/ns/shop/sa/payment")
	if err := s.SetCertificate("payment-1.shop", []*x509.Certificate{leaf}); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, ctx, cc, "payment-1.shop")
	names := []string{mesh.SecretRootCA, mesh.SecretWorkloadCert}
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: names})
	r := c.recv(resource.SecretType)
	sec := secretsIn(t, r)
	if got := string(sec[mesh.SecretWorkloadCert].GetTlsCertificate().GetCertificateChain().GetInlineBytes()); got != string(encodePEM([]*x509.Certificate{leaf})) {
		t.Fatalf("default secret: %q", got)
	}
	if sec[mesh.SecretWorkloadCert].GetTlsCertificate().GetPrivateKey() != nil {
		t.Fatal("default secret carries a private key")
	}
	if got := strings.Count(string(sec[mesh.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()), "BEGIN CERTIFICATE"); got != 1 {
		t.Fatalf("ROOTCA: %d roots", got)
	}
	c.ack(r, names...)

	// Another node's certificate does not touch this node.
	if err := s.SetCertificate("order-1.shop", []*x509.Certificate{testCert(t, "spiffe://cluster.local/ns/shop/sa/order")}); err != nil {
		t.Fatal(err)
	}
	c.none(200 * time.Millisecond)

	// A renewal is pushed with a new version.
	leaf2 := testCert(t, "spiffe://cluster.local/ns/shop/sa/payment")
	if err := s.SetCertificate("payment-1.shop", []*x509.Certificate{leaf2}); err != nil {
		t.Fatal(err)
	}
	r2 := c.recv(resource.SecretType)
	if r2.GetVersionInfo() == r.GetVersionInfo() || !strings.Contains(string(secretsIn(t, r2)[mesh.SecretWorkloadCert].GetTlsCertificate().GetCertificateChain().GetInlineBytes()), string(encodePEM([]*x509.Certificate{leaf2}))) {
		t.Fatalf("renewal push: version %s (was %s)", r2.GetVersionInfo(), r.GetVersionInfo())
	}
	c.ack(r2, names...)

	// A bundle change (root rotation) is pushed; the same bundle again is not.
	s.SetTrustBundle([]*x509.Certificate{root1, root2})
	r3 := c.recv(resource.SecretType)
	if got := strings.Count(string(secretsIn(t, r3)[mesh.SecretRootCA].GetValidationContext().GetTrustedCa().GetInlineBytes()), "BEGIN CERTIFICATE"); got != 2 {
		t.Fatalf("ROOTCA after rotation: %d roots", got)
	}
	c.ack(r3, names...)
	s.SetTrustBundle([]*x509.Certificate{root1, root2})
	c.none(200 * time.Millisecond)

	certs := s.Certificates()
	if len(certs) != 2 || certs[1].Proxy != "payment-1.shop" || certs[1].Serial != leaf2.SerialNumber.Text(16) ||
		certs[1].Identity != "spiffe://cluster.local/ns/shop/sa/payment" {
		t.Fatalf("Certificates() = %+v", certs)
	}
}
