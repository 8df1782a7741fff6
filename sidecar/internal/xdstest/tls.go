package xdstest

import (
	"crypto/x509"
	"encoding/pem"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
)

// commonTLS is the CommonTlsContext of the contract: TLS 1.3, ALPN h2, the
// certificate and bundle from SDS over ADS, SAN matchers.
func commonTLS(sans []*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:     &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		AlpnProtocols: []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
			Name: mesh.SecretWorkloadCert, SdsConfig: ads(),
		}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: mesh.SecretRootCA, SdsConfig: ads()},
			},
		},
	}
}

// UpstreamTLS is an outbound cluster's transport socket allowing peerIDs.
func UpstreamTLS(peerIDs ...string) *core.TransportSocket {
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, id := range peerIDs {
		sans = append(sans, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: id}},
		})
	}
	return &core.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(sans)})},
	}
}

// WithUpstreamTLS returns c with UpstreamTLS(peerIDs...).
func WithUpstreamTLS(c *cluster.Cluster, peerIDs ...string) *cluster.Cluster {
	c = proto.Clone(c).(*cluster.Cluster)
	c.TransportSocket = UpstreamTLS(peerIDs...)
	return c
}

// DownstreamTLS is an inbound chain's transport socket for trust domain td.
func DownstreamTLS(td string) *core.TransportSocket {
	sans := []*tlsv3.SubjectAltNameMatcher{{
		SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}},
	}}
	return &core.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext:         commonTLS(sans),
		})},
	}
}

// MTLSInboundListener is InboundListener with mTLS chains (STRICT): every
// chain matches transport_protocol "tls" with DownstreamTLS(td); with
// permissive, each port also gets a "raw_buffer" chain without a socket.
func MTLSInboundListener(ip, td string, permissive bool, ports ...uint32) *listener.Listener {
	l := InboundListener(ip, ports...)
	var chains []*listener.FilterChain
	for _, fc := range l.FilterChains {
		raw := proto.Clone(fc).(*listener.FilterChain)
		fc.FilterChainMatch.TransportProtocol = "tls"
		fc.TransportSocket = DownstreamTLS(td)
		chains = append(chains, fc)
		if permissive {
			raw.FilterChainMatch.TransportProtocol = "raw_buffer"
			chains = append(chains, raw)
		}
	}
	l.FilterChains = chains
	return l
}

// CertSecret is the "default" SDS Secret with chain (no key).
func CertSecret(chain ...*x509.Certificate) *tlsv3.Secret {
	return &tlsv3.Secret{Name: mesh.SecretWorkloadCert, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: pemCerts(chain)}},
	}}}
}

// RootSecret is the "ROOTCA" SDS Secret with roots.
func RootSecret(roots ...*x509.Certificate) *tlsv3.Secret {
	return &tlsv3.Secret{Name: mesh.SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: pemCerts(roots)}},
	}}}
}

func pemCerts(cs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
