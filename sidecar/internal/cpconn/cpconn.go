package cpconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
)

// Connection timings. The control plane's gRPC server accepts a client
// PING every 10 s at most (its keepalive enforcement policy; more often is
// answered with GOAWAY too_many_pings) and pings an idle connection itself
// after 30 s, which also counts as received here.
const (
	// PingIdle is how long a connection may receive nothing before it is
	// sent a PING.
	PingIdle = 20 * time.Second
	// PingTimeout is how long the answer to a PING may take before the
	// connection is closed.
	PingTimeout = 10 * time.Second
	// DialTimeout bounds the TCP connect and the TLS handshake.
	DialTimeout = 5 * time.Second
)

// NewTransport returns an HTTP/2-only transport to the control plane: TLS
// with ALPN h2 when tlsCfg is not nil (it is cloned), cleartext HTTP/2 with
// prior knowledge otherwise. It ignores proxy environment variables.
func NewTransport(tlsCfg *tls.Config) *http.Transport {
	var p http.Protocols
	if tlsCfg != nil {
		p.SetHTTP2(true)
		tlsCfg = tlsCfg.Clone()
		tlsCfg.NextProtos = []string{"h2"}
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	d := &net.Dialer{Timeout: DialTimeout}
	return &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: DialTimeout,
		Protocols:           &p,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: PingIdle,
			PingTimeout:     PingTimeout,
		},
	}
}

// BaseURL is the URL the gRPC procedures of the server at addr (host:port)
// are relative to: https when secure, http otherwise.
func BaseURL(addr string, secure bool) string {
	if secure {
		return "https://" + addr
	}
	return "http://" + addr
}

// Bearer is an http.RoundTripper that sends `authorization: Bearer
// <token>` (cav1.MetadataAuthorization, the gRPC metadata the control
// plane reads) on every request, with the token Token returns for it.
type Bearer struct {
	Next  http.RoundTripper
	Token func(ctx context.Context) (string, error)
}

var _ http.RoundTripper = Bearer{}

// RoundTrip implements http.RoundTripper.
func (b Bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := b.Token(r.Context())
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("cpconn: credential: %w", err)
	}
	r = r.Clone(r.Context())
	r.Header.Set(cav1.MetadataAuthorization, cav1.BearerPrefix+tok)
	return b.Next.RoundTrip(r)
}
