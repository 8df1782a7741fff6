package xdsclient

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/api/xdsproto"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	listener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	tlsv3 "github.com/weftmesh/weft/api/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
)

// TypeSecret is the SDS resource type: the workload certificate chain
// ("default") and the trust bundle ("ROOTCA").
const TypeSecret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// TransportSocketTLS is the only transport socket the sidecar implements.
const TransportSocketTLS = "envoy.transport_sockets.tls"

// Filter chain transport protocols (filter_chain_match.transport_protocol).
const (
	TransportProtocolTLS = "tls"
	TransportProtocolRaw = "raw_buffer"
)

// SecretSink installs SDS secrets; identity.Manager implements it. Each call
// either installs the material or refuses it with the reason (a chain whose
// key is not the sidecar's, a chain the bundle does not verify), keeping what
// it had.
type SecretSink interface {
	SetX509SVID(chain []*x509.Certificate) error
	SetBundle(roots []*x509.Certificate) error
	Apply(chain, roots []*x509.Certificate) error
}

// WithSecrets enables mTLS: transport sockets are accepted, the SDS secrets
// they name are subscribed to and handed to sink. Without it a transport
// socket is rejected (the sidecar has no identity to serve it with).
func WithSecrets(sink SecretSink) Option { return func(o *options) { o.secrets = sink } }

// UpstreamTLS is a cluster's UpstreamTlsContext as the tunnel applies it.
type UpstreamTLS struct {
	// CertSecret and RootSecret are the SDS secret names of the workload
	// certificate and the trust bundle.
	CertSecret, RootSecret string
	// PeerIDs are the SPIFFE IDs the peer may present
	// (match_typed_subject_alt_names, URI, exact), sorted. Empty refuses every
	// peer.
	PeerIDs []string
	// Key is PeerIDs joined: clusters with equal keys share connections.
	Key string
}

// DownstreamTLS is an inbound filter chain's DownstreamTlsContext.
type DownstreamTLS struct {
	CertSecret, RootSecret string
	// SANPrefixes are the match_typed_subject_alt_names prefixes (the trust
	// domain, "spiffe://<td>/").
	SANPrefixes []string
}

// decodeUpstreamTLS checks a cluster's transport socket.
func decodeUpstreamTLS(ts *core.TransportSocket) (*UpstreamTLS, error) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := unpackSocket(ts, ctx); err != nil {
		return nil, err
	}
	if ctx.GetSni() != "" || ctx.GetAllowRenegotiation() || ctx.GetMaxSessionKeys() != nil {
		return nil, errors.New("transport_socket: sni, allow_renegotiation and max_session_keys are not supported")
	}
	cert, root, v, err := decodeCommonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	out := &UpstreamTLS{CertSecret: cert, RootSecret: root}
	for i, m := range v.GetMatchTypedSubjectAltNames() {
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI || m.GetMatcher().GetExact() == "" {
			return nil, fmt.Errorf("transport_socket: match_typed_subject_alt_names[%d]: only URI exact matches are supported", i)
		}
		id, err := spiffeid.FromString(m.GetMatcher().GetExact())
		if err != nil {
			return nil, fmt.Errorf("transport_socket: match_typed_subject_alt_names[%d]: %w", i, err)
		}
		out.PeerIDs = append(out.PeerIDs, id.String())
	}
	slices.Sort(out.PeerIDs)
	out.PeerIDs = slices.Compact(out.PeerIDs)
	out.Key = strings.Join(out.PeerIDs, ",")
	return out, nil
}

// decodeDownstreamTLS checks an inbound filter chain's transport socket.
func decodeDownstreamTLS(ts *core.TransportSocket) (*DownstreamTLS, error) {
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := unpackSocket(ts, ctx); err != nil {
		return nil, err
	}
	// Accepting a peer without a certificate would fail open.
	if !ctx.GetRequireClientCertificate().GetValue() {
		return nil, errors.New("transport_socket: require_client_certificate must be true")
	}
	cert, root, v, err := decodeCommonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	out := &DownstreamTLS{CertSecret: cert, RootSecret: root}
	for i, m := range v.GetMatchTypedSubjectAltNames() {
		p := m.GetMatcher().GetPrefix()
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI || p == "" {
			return nil, fmt.Errorf("transport_socket: match_typed_subject_alt_names[%d]: only URI prefix matches are supported", i)
		}
		if _, err := spiffeid.TrustDomainFromString(strings.TrimSuffix(p, "/")); err != nil || !strings.HasSuffix(p, "/") {
			return nil, fmt.Errorf("transport_socket: match_typed_subject_alt_names[%d]: prefix %q is not spiffe://<trust domain>/", i, p)
		}
		out.SANPrefixes = append(out.SANPrefixes, p)
	}
	return out, nil
}

func unpackSocket(ts *core.TransportSocket, m proto.Message) error {
	if ts.GetName() != TransportSocketTLS {
		return fmt.Errorf("transport_socket: %q is not supported (%s only)", ts.GetName(), TransportSocketTLS)
	}
	tc := ts.GetTypedConfig()
	want := xdsproto.TypeURL(m)
	if tc.GetTypeUrl() != want {
		return fmt.Errorf("transport_socket: typed_config is %q, want %s", tc.GetTypeUrl(), want)
	}
	if err := unpack(tc, m); err != nil {
		return fmt.Errorf("transport_socket: %w", err)
	}
	return nil
}

// decodeCommonTLS checks what both sides share: TLS 1.3, ALPN h2, the
// certificate and the bundle from SDS over ADS (the private key never comes
// over the wire), SAN matchers in the default validation context.
func decodeCommonTLS(c *tlsv3.CommonTlsContext) (cert, root string, v *tlsv3.CertificateValidationContext, err error) {
	if c == nil {
		return "", "", nil, errors.New("common_tls_context: required")
	}
	if p := c.GetTlsParams(); p != nil {
		if lo := p.GetTlsMinimumProtocolVersion(); lo > tlsv3.TlsParameters_TLSv1_3 {
			return "", "", nil, fmt.Errorf("tls_params: minimum %s is not supported", lo)
		}
		if hi := p.GetTlsMaximumProtocolVersion(); hi != tlsv3.TlsParameters_TLS_AUTO && hi < tlsv3.TlsParameters_TLSv1_3 {
			return "", "", nil, fmt.Errorf("tls_params: maximum %s is below TLSv1_3 (the mesh speaks TLS 1.3 only)", hi)
		}
	}
	if a := c.GetAlpnProtocols(); len(a) > 0 && !slices.Contains(a, "h2") {
		return "", "", nil, fmt.Errorf("alpn_protocols: %q lacks h2", a)
	}
	if len(c.GetTlsCertificates()) > 0 || c.GetTlsCertificateProviderInstance() != nil ||
		c.GetTlsCertificateCertificateProvider() != nil || c.GetTlsCertificateCertificateProviderInstance() != nil {
		return "", "", nil, errors.New("certificate: only tls_certificate_sds_secret_configs is supported (the key stays in the sidecar)")
	}
	sds := c.GetTlsCertificateSdsSecretConfigs()
	if len(sds) != 1 {
		return "", "", nil, fmt.Errorf("tls_certificate_sds_secret_configs: want exactly one, got %d", len(sds))
	}
	if cert, err = sdsName(sds[0]); err != nil {
		return "", "", nil, fmt.Errorf("tls_certificate_sds_secret_configs[0]: %w", err)
	}
	switch vc := c.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		if root, err = sdsName(vc.CombinedValidationContext.GetValidationContextSdsSecretConfig()); err != nil {
			return "", "", nil, fmt.Errorf("combined_validation_context.validation_context_sds_secret_config: %w", err)
		}
		v = vc.CombinedValidationContext.GetDefaultValidationContext()
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if root, err = sdsName(vc.ValidationContextSdsSecretConfig); err != nil {
			return "", "", nil, fmt.Errorf("validation_context_sds_secret_config: %w", err)
		}
	default:
		return "", "", nil, errors.New("validation context: the trust bundle must come from SDS (combined_validation_context or validation_context_sds_secret_config)")
	}
	if v != nil {
		rest := proto.Clone(v).(*tlsv3.CertificateValidationContext)
		rest.MatchTypedSubjectAltNames = nil
		if !proto.Equal(rest, &tlsv3.CertificateValidationContext{}) {
			return "", "", nil, errors.New("default_validation_context: only match_typed_subject_alt_names is supported")
		}
	}
	return cert, root, v, nil
}

func sdsName(s *tlsv3.SdsSecretConfig) (string, error) {
	if s.GetName() == "" {
		return "", errors.New("name is required")
	}
	if s.GetSdsConfig().GetAds() == nil {
		return "", errors.New("sds_config must be ads")
	}
	return s.GetName(), nil
}

// secrets is the decoded content of one SDS response.
type secrets struct {
	chain, roots []*x509.Certificate
	names        []string
}

// decodeSecrets unmarshals and validates an SDS response's resources: a
// certificate chain (tls_certificate.certificate_chain, no private key) or a
// trust bundle (validation_context.trusted_ca), inline bytes only.
func decodeSecrets(rs []*anypb.Any, want map[string]bool) (*secrets, error) {
	out := &secrets{}
	var errs []error
	for _, a := range rs {
		s := &tlsv3.Secret{}
		if err := unpack(a, s); err != nil {
			errs = append(errs, resourceError("secret", s.GetName(), err))
			continue
		}
		if !want[s.GetName()] {
			continue
		}
		out.names = append(out.names, s.GetName())
		if err := func() error {
			switch t := s.GetType().(type) {
			case *tlsv3.Secret_TlsCertificate:
				tc := t.TlsCertificate
				if tc.GetPrivateKey() != nil || tc.GetPrivateKeyProvider() != nil {
					return errors.New("tls_certificate: a private key must not be sent (the key stays in the sidecar)")
				}
				chain, err := parsePEM(tc.GetCertificateChain())
				if err != nil {
					return fmt.Errorf("tls_certificate.certificate_chain: %w", err)
				}
				if out.chain != nil {
					return errors.New("more than one certificate chain in one response")
				}
				out.chain = chain
			case *tlsv3.Secret_ValidationContext:
				roots, err := parsePEM(t.ValidationContext.GetTrustedCa())
				if err != nil {
					return fmt.Errorf("validation_context.trusted_ca: %w", err)
				}
				if out.roots != nil {
					return errors.New("more than one trust bundle in one response")
				}
				out.roots = roots
			default:
				return errors.New("only tls_certificate and validation_context secrets are supported")
			}
			return nil
		}(); err != nil {
			errs = append(errs, resourceError("secret", s.GetName(), err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func parsePEM(ds *core.DataSource) ([]*x509.Certificate, error) {
	b := ds.GetInlineBytes()
	if b == nil && ds.GetInlineString() != "" {
		b = []byte(ds.GetInlineString())
	}
	if b == nil {
		return nil, errors.New("inline_bytes or inline_string is required")
	}
	var certs []*x509.Certificate
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
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
	if len(strings.TrimSpace(string(rest))) > 0 || len(certs) == 0 {
		return nil, errors.New("not a sequence of PEM certificates")
	}
	return certs, nil
}

// applySecrets hands a decoded SDS response to sink: chain and bundle
// together when both came (so a new chain is verified against the new
// bundle), else the one that came.
func applySecrets(sink SecretSink, s *secrets) error {
	switch {
	case s.chain != nil && s.roots != nil:
		return sink.Apply(s.chain, s.roots)
	case s.roots != nil:
		return sink.SetBundle(s.roots)
	case s.chain != nil:
		return sink.SetX509SVID(s.chain)
	}
	return nil
}

// SecretNames returns the sorted SDS secret names the clusters' and
// listeners' transport sockets reference.
func (s *Snapshot) SecretNames() []string { return secretNames(s.Clusters, s.Listeners) }

func secretNames(cs map[string]*Cluster, ls map[string]*Listener) []string {
	var out []string
	for _, c := range cs {
		if t := c.TLS; t != nil {
			out = append(out, t.CertSecret, t.RootSecret)
		}
	}
	for _, l := range ls {
		for _, fc := range l.Chains {
			if t := fc.TLS; t != nil {
				out = append(out, t.CertSecret, t.RootSecret)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeChains folds b, a second chain for a's port, into a: allowed only as
// the TLS + plaintext pair of a PERMISSIVE port, whose filters must be the
// same (one HTTP connection manager serves both).
func mergeChains(a *FilterChain, b FilterChain, pa, pb *listener.FilterChain) error {
	if (a.TLS != nil) == (b.TLS != nil) || a.Plaintext == b.Plaintext {
		return errors.New("only one tls and one raw_buffer chain per port")
	}
	if len(pa.GetFilters()) != len(pb.GetFilters()) {
		return errors.New("the tls and raw_buffer chains have different filters")
	}
	for i := range pa.GetFilters() {
		if !proto.Equal(pa.GetFilters()[i], pb.GetFilters()[i]) {
			return errors.New("the tls and raw_buffer chains have different filters")
		}
	}
	if b.TLS != nil {
		a.TLS, a.Name = b.TLS, b.Name
	}
	a.Plaintext = true
	return nil
}

// checkNoTLS rejects transport sockets when the sidecar runs without an
// identity: serving plaintext where TLS was asked for would fail open.
func checkNoTLS(s *Snapshot) []error {
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(s.Clusters)) {
		if s.Clusters[n].TLS != nil {
			errs = append(errs, resourceError("cluster", n, errors.New("transport_socket: this sidecar runs without an identity (no --ca-bundle)")))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(s.Listeners)) {
		for _, fc := range s.Listeners[n].Chains {
			if fc.TLS != nil {
				errs = append(errs, resourceError("listener", n, fmt.Errorf("filter chain %q: transport_socket: this sidecar runs without an identity (no --ca-bundle)", fc.Name)))
			}
		}
	}
	return errs
}

// handleSecrets validates an SDS response and installs it through the
// sink, which refuses a chain that is not for the sidecar's key or that the
// bundle does not verify: the response is NACKed and the current
// certificate and bundle stay.
func (s *session) handleSecrets(ts *typeState, resp *discovery.DiscoveryResponse) error {
	c := s.c
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != ts.url {
			return s.nack(ts, resp, fmt.Errorf("resource %d: type %s in a %s response", i, a.GetTypeUrl(), shortType(ts.url)))
		}
	}
	sec, err := decodeSecrets(resp.GetResources(), set(ts.names))
	if err == nil && c.opts.secrets == nil {
		err = errors.New("this sidecar runs without an identity (no --ca-bundle)")
	}
	if err == nil {
		if err = applySecrets(c.opts.secrets, sec); err != nil {
			err = fmt.Errorf("secrets %q: %w", sec.names, err)
		}
	}
	if err != nil {
		return s.nack(ts, resp, err)
	}
	ts.acked = resp.GetVersionInfo()
	ts.nackVersion, ts.nackCount = "", 0
	c.mu.Lock()
	c.status.Acked[ts.url] = ts.acked
	c.mu.Unlock()
	c.log.Debug("xds secrets accepted", "version", ts.acked, "names", sec.names)
	return s.send(ts, nil)
}
