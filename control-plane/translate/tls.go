package translate

import (
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
)

// This file is the transport half of the "Identity and mTLS contract"
// (docs/architecture.md): UpstreamTlsContext on outbound clusters whose
// endpoints run sidecars, DownstreamTlsContext (and, in PERMISSIVE mode, a
// plaintext chain) on every inbound port. Certificates and roots are never
// inline: they are the SDS Secrets mesh.SecretWorkloadCert and
// mesh.SecretRootCA, served over ADS.

// Transport protocols of an inbound filter_chain_match.
const (
	transportTLS = "tls"
	transportRaw = "raw_buffer"
)

// alpnH2 is the only protocol of the mesh hop.
var alpnH2 = []string{"h2"}

// mtlsMode is the workload's inbound mode: its own annotation, else its
// Namespace's, else the mesh config's.
func (b *builder) mtlsMode() meshconfig.MTLSMode {
	if m, ok := b.w.Annotations[mesh.AnnotationMTLSMode]; ok {
		return meshconfig.MTLSMode(m)
	}
	if ns, _ := b.state.Namespace(b.w.Namespace); ns.Annotations != nil {
		if m, ok := ns.Annotations[mesh.AnnotationMTLSMode]; ok {
			return meshconfig.MTLSMode(m)
		}
	}
	return b.mc.MTLSMode
}

// inboundPorts are the ports the inbound listener serves: every TCP port
// the workload declares and every port a Service targets. Declared ports
// are served even when no Service selects the workload, so a workload that
// a selector stops matching still answers requests routed to it a moment
// before (instead of 421).
func (b *builder) inboundPorts() []uint32 {
	ports := slices.Clone(b.w.InboundPorts)
	for _, p := range b.w.Ports {
		if p.Protocol == "" || p.Protocol == model.ProtocolTCP {
			ports = append(ports, p.Port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// commonTLS is the part both sides share: TLS 1.3 only, ALPN h2, the
// workload certificate and the trust bundle over SDS, and peer SAN
// matchers.
func commonTLS(sans []*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		AlpnProtocols:                  slices.Clone(alpnH2),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(mesh.SecretWorkloadCert)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
				ValidationContextSdsSecretConfig: sdsSecret(mesh.SecretRootCA),
			},
		},
	}
}

func uriSAN(m *matcher.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
}

// upstreamTLS is the transport socket of an outbound cluster, or nil when
// no endpoint runs a sidecar (non-mesh endpoints are dialled in plaintext).
// The allowed SANs are the SPIFFE IDs of the port's sidecar endpoints.
func (b *builder) upstreamTLS(eps []model.Endpoint) (*core.TransportSocket, error) {
	var ids []string
	for _, ep := range eps {
		if ep.Sidecar() {
			ids = append(ids, ep.Identity(b.mc.TrustDomain))
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	sans := make([]*tlsv3.SubjectAltNameMatcher, 0, len(ids))
	for _, id := range ids {
		sans = append(sans, uriSAN(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: id}}))
	}
	a, err := typed(&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(sans)})
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

// downstreamTLS is the transport socket of an inbound TLS chain: client
// certificates required, any SPIFFE ID of the trust domain accepted.
func (b *builder) downstreamTLS() (*core.TransportSocket, error) {
	prefix := "spiffe://" + b.mc.TrustDomain + "/"
	a, err := typed(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: commonTLS([]*tlsv3.SubjectAltNameMatcher{
			uriSAN(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: prefix}}),
		}),
	})
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

// inboundChains are the filter chains of one inbound port: mTLS always,
// and plaintext as well in PERMISSIVE mode. Both run the same filters.
func (b *builder) inboundChains(name string, port uint32, filters []*listener.Filter) ([]*listener.FilterChain, error) {
	ts, err := b.downstreamTLS()
	if err != nil {
		return nil, err
	}
	chains := []*listener.FilterChain{{
		Name: name,
		FilterChainMatch: &listener.FilterChainMatch{
			DestinationPort:   wrapperspb.UInt32(port),
			TransportProtocol: transportTLS,
		},
		Filters:         filters,
		TransportSocket: ts,
	}}
	if b.mtlsMode() == meshconfig.MTLSPermissive {
		chains = append(chains, &listener.FilterChain{
			Name: name + "|" + transportRaw,
			FilterChainMatch: &listener.FilterChainMatch{
				DestinationPort:   wrapperspb.UInt32(port),
				TransportProtocol: transportRaw,
			},
			Filters: filters,
		})
	}
	return chains, nil
}
