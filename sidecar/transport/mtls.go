package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/sidecar/lb"
)

// TLSConfigFunc returns the client TLS config that authorizes exactly
// peerIDs (identity.ClientTLSConfig over the sidecar's Manager). The config
// must read the certificate at each handshake, so a rotation applies to new
// connections and never closes live ones.
type TLSConfigFunc func(peerIDs []string) (*tls.Config, error)

// MTLS is the tunnel of the identity issue: HTTP/2 over mutual TLS 1.3 to
// the peer's inbound listener, for endpoints whose cluster has an
// UpstreamTlsContext (Endpoint.MTLS); endpoints without one go over the h2c
// tunnel, as before (tests, permissive migration).
//
// There is one HTTP/2 transport per set of allowed peer IDs (a cluster's
// SAN list; equal lists share it), and in it one multiplexed connection per
// peer address, behind the same cold-start gate as H2C. A TLS handshake
// failure (the peer's identity is not in the list, its certificate does
// not verify) is a *DialError: the request never reached the peer.
type MTLS struct {
	h2c    *H2C
	dialer *Dialer
	config TLSConfigFunc
	byKey  sync.Map // lb.MTLS.Key -> *mtlsPool
}

var _ Tunnel = (*MTLS)(nil)

type mtlsPool struct {
	once sync.Once
	h    *H2C
	err  error
}

// NewMTLS returns the mTLS tunnel; d dials (nil: mesh default timeout).
func NewMTLS(d *Dialer, config TLSConfigFunc) *MTLS {
	if d == nil {
		d = NewDialer(0)
	}
	return &MTLS{h2c: NewH2C(d), dialer: d, config: config}
}

// RoundTrip implements Tunnel.
func (m *MTLS) RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	if ep == nil || ep.MTLS == nil {
		return m.h2c.RoundTrip(req, ep)
	}
	pv, ok := m.byKey.Load(ep.MTLS.Key)
	if !ok {
		pv, _ = m.byKey.LoadOrStore(ep.MTLS.Key, &mtlsPool{})
	}
	p := pv.(*mtlsPool)
	p.once.Do(func() {
		cfg, err := m.config(ep.MTLS.PeerIDs)
		if err != nil {
			p.err = err
			return
		}
		p.h = newTLSTunnel(m.dialer, cfg)
	})
	if p.err != nil {
		return nil, &DialError{Addr: req.URL.Host, Err: p.err}
	}
	req.URL.Scheme = "https"
	return p.h.RoundTrip(req, ep)
}

// CloseIdleConnections implements Tunnel.
func (m *MTLS) CloseIdleConnections() {
	m.h2c.CloseIdleConnections()
	m.byKey.Range(func(_, v any) bool {
		if p := v.(*mtlsPool); p.h != nil {
			p.h.CloseIdleConnections()
		}
		return true
	})
}

// newTLSTunnel is an H2C whose transport speaks HTTP/2 over TLS: the dial
// and the handshake are one step, so a refused handshake is a DialError.
func newTLSTunnel(d *Dialer, cfg *tls.Config) *H2C {
	h := NewH2C(d)
	h.t.Protocols = new(http.Protocols)
	h.t.Protocols.SetHTTP2(true)
	h.t.DialContext = nil
	h.t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if g, ok := h.peers.Load(addr); ok {
			g.(*peerGate).warm.Store(false)
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		timeout := d.timeout
		if ep := EndpointFromContext(ctx); ep != nil && ep.ConnectTimeout > 0 {
			timeout = ep.ConnectTimeout
		}
		hctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
		defer cancel()
		c := tls.Client(raw, cfg)
		if err := c.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, &DialError{Addr: addr, Err: err}
		}
		return c, nil
	}
	return h
}
