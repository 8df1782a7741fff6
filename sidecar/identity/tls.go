package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ALPNH2 is the only protocol spoken between sidecars.
const ALPNH2 = "h2"

// ServerTLSConfig is the inbound side of sidecar-to-sidecar mTLS: TLS 1.3
// only, ALPN h2 required, a client certificate required, and any SPIFFE ID of the
// trust domain td accepted (which peer may do what is the authorization
// filter's job: read the verified ID with PeerID). The certificate and the
// bundle are read from the sources at each handshake, so a rotation needs
// no new config and closes no connection. Every refused peer is logged on
// log (when not nil) with the reason.
func ServerTLSConfig(svid x509svid.Source, bundle x509bundle.Source, td spiffeid.TrustDomain, log *slog.Logger) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(svid, bundle, tlsconfig.AuthorizeMemberOf(td))
	return finish(cfg, "inbound", log)
}

// ClientTLSConfig is the outbound side: TLS 1.3 only, ALPN h2, our
// certificate presented, and the server accepted only if its SPIFFE ID is
// one of allowed (the cluster's allowed SANs, from the control plane). An
// empty allowed set accepts no server.
func ClientTLSConfig(svid x509svid.Source, bundle x509bundle.Source, allowed []spiffeid.ID, log *slog.Logger) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeOneOf(allowed...))
	return finish(cfg, "outbound", log)
}

func finish(cfg *tls.Config, side string, log *slog.Logger) *tls.Config {
	cfg.MinVersion = tls.VersionTLS13
	// A resumed session skips VerifyPeerCertificate: no resumption, so every
	// connection is verified against the bundle and the authorizer as they
	// are now.
	cfg.SessionTicketsDisabled = true
	cfg.NextProtos = []string{ALPNH2}
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
	// Go accepts a peer that offers no ALPN protocol, or only http/1.1;
	// the sidecar hop speaks h2 and nothing else.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != ALPNH2 {
			if log != nil {
				log.Warn("identity: refused peer without ALPN h2", "side", side, "alpn", cs.NegotiatedProtocol)
			}
			return fmt.Errorf("identity: %s: refused peer: ALPN %q negotiated, want %q", side, cs.NegotiatedProtocol, ALPNH2)
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
