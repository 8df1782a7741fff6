package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// The protocols spoken between sidecars, as ALPN names: HTTP/2 (gRPC,
// HTTP/2 clients, CONNECT streams) and HTTP/1.1 (requests that arrived as
// HTTP/1.1, over a pool of keep-alive connections).
const (
	ALPNH2     = "h2"
	ALPNHTTP11 = "http/1.1"
)

// ServerTLSConfig is the inbound side of sidecar-to-sidecar mTLS: TLS 1.3
// only, ALPN h2 or http/1.1 required, a client certificate required, and any SPIFFE ID of the
// trust domain td accepted (which peer may do what is the authorization
// filter's job: read the verified ID with PeerID). The certificate and the
// bundle are read from the sources at each handshake, so a rotation needs
// no new config and closes no connection. Every refused peer is logged on
// log (when not nil) with the reason.
func ServerTLSConfig(svid x509svid.Source, bundle x509bundle.Source, td spiffeid.TrustDomain, log *slog.Logger) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(svid, bundle, tlsconfig.AuthorizeMemberOf(td))
	// Server preference: a client that offers both gets h2.
	return finish(cfg, "inbound", log, ALPNH2, ALPNHTTP11)
}

// ClientTLSConfig is the outbound side: TLS 1.3 only, ALPN h2, our
// certificate presented, and the server accepted only if its SPIFFE ID is
// one of allowed (the cluster's allowed SANs, from the control plane). An
// empty allowed set accepts no server.
func ClientTLSConfig(svid x509svid.Source, bundle x509bundle.Source, allowed []spiffeid.ID, log *slog.Logger) *tls.Config {
	return ClientTLSConfigALPN(svid, bundle, allowed, ALPNH2, log)
}

// ClientTLSConfigALPN is ClientTLSConfig offering, and requiring, the one
// protocol alpn (ALPNH2 or ALPNHTTP11) instead of h2.
func ClientTLSConfigALPN(svid x509svid.Source, bundle x509bundle.Source, allowed []spiffeid.ID, alpn string, log *slog.Logger) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeOneOf(allowed...))
	return finish(cfg, "outbound", log, alpn)
}

// finish makes cfg TLS 1.3 only, without resumption, logging refusals, and
// requiring that one of protos be negotiated.
func finish(cfg *tls.Config, side string, log *slog.Logger, protos ...string) *tls.Config {
	cfg.MinVersion = tls.VersionTLS13
	// A resumed session skips VerifyPeerCertificate: no resumption, so every
	// connection is verified against the bundle and the authorizer as they
	// are now.
	cfg.SessionTicketsDisabled = true
	cfg.NextProtos = protos
	verify := cfg.VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := verify(raw, chains)
		if err != nil {
			if log != nil {
				log.Warn("identity: refused peer certificate", "side", side, "peer_id", claimedID(raw), "reason", err.Error())
			}
			return fmt.Errorf("identity: %s: refused peer: %w", side, err)
		}
		return nil
	}
	// Go accepts a peer that offers no ALPN protocol, or none in common;
	// the sidecar hop speaks protos and nothing else.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if !slices.Contains(protos, cs.NegotiatedProtocol) {
			if log != nil {
				log.Warn("identity: refused peer without an agreed ALPN protocol", "side", side, "alpn", cs.NegotiatedProtocol, "want", protos)
			}
			return fmt.Errorf("identity: %s: refused peer: ALPN %q negotiated, want one of %q", side, cs.NegotiatedProtocol, protos)
		}
		return nil
	}
	return cfg
}

// claimedID is the SPIFFE ID a peer's leaf claims (unverified, for logs).
func claimedID(raw [][]byte) string {
	if len(raw) == 0 {
		return "(no certificate)"
	}
	c, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "(unparsable certificate)"
	}
	id, err := x509svid.IDFromCert(c)
	if err != nil {
		return "(no SPIFFE ID)"
	}
	return id.String()
}

// PeerID returns the SPIFFE ID of the verified peer of a completed
// handshake on a connection made with ServerTLSConfig or ClientTLSConfig
// (whose verification callback refuses any handshake it did not verify).
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if !cs.HandshakeComplete {
		return spiffeid.ID{}, errors.New("identity: handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("identity: peer presented no certificate")
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("identity: peer: %w", err)
	}
	return id, nil
}
