package authz

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/authz"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Filter authorizes requests. Build it once per sidecar with New.
type Filter struct {
	log    *slog.Logger
	denied *prometheus.CounterVec
	// reqs recycles the *authz.Request of each decision: Evaluate keeps
	// none, and one built on the stack escapes through its rule
	// interfaces (an allocation per request otherwise).
	reqs sync.Pool
}

// Option configures New.
type Option func(*Filter)

// WithRegisterer registers weft_authz_denied_total{policy} in reg (the
// sidecar's Prometheus registry). Without it the counter is kept but not
// exported.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(f *Filter) {
		if err := reg.Register(f.denied); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					f.denied = c
				}
			}
		}
	}
}

// New returns the filter.
func New(log *slog.Logger, opts ...Option) *Filter {
	f := &Filter{
		log: log.With("component", "authz"),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: mesh.MetricAuthzDenied,
			Help: "Requests denied by authorization, by the deciding policy (<ns>/<name>/rules[i], <ns>/<name>/ingress[i], <filter>:default-deny).",
		}, []string{"policy"}),
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Denied returns the denial counter (for tests and metrics readers).
func (f *Filter) Denied() *prometheus.CounterVec { return f.denied }

var (
	headerXFCC         = http.CanonicalHeaderKey(mesh.HeaderForwardedClientCert)
	headerPeerIdentity = http.CanonicalHeaderKey(mesh.HeaderPeerIdentity)
)

// StripIdentityHeaders removes every header a client could use to claim
// an identity: identity comes from the verified certificate only.
func StripIdentityHeaders(h http.Header) {
	delete(h, headerXFCC)
	delete(h, headerPeerIdentity)
}

// ChainEngine returns the engine of the filter chain of l that serves
// port (the chain for that port, else the any-port chain), or nil.
func ChainEngine(l *xdsclient.Listener, port uint32) *authz.Engine {
	if l == nil {
		return nil
	}
	var anyPort *authz.Engine
	for i := range l.Chains {
		c := &l.Chains[i]
		switch c.DestinationPort {
		case port:
			return c.Authz
		case 0:
			anyPort = c.Authz
		}
	}
	return anyPort
}

// Inbound authorizes r, which arrived for workload port port from peer
// (the verified SPIFFE ID, "" for plaintext). It strips identity headers
// and normalizes r's path in place. When it returns false it has answered
// (400 or 403) and r must not be forwarded.
func (f *Filter) Inbound(w http.ResponseWriter, r *http.Request, e *authz.Engine, peer string, port uint32) bool {
	StripIdentityHeaders(r.Header)
	path, ok := normalize(w, r)
	if !ok {
		return false
	}
	req := f.request()
	*req = authz.Request{
		Principal:       peer,
		Source:          remoteAddr(r.RemoteAddr),
		DestinationIP:   localAddr(r.Context()),
		DestinationPort: port,
		Method:          r.Method,
		Authority:       r.Host,
		Path:            path,
		Headers:         r.Header,
	}
	return f.decide(w, r, e, req, "inbound")
}

// Outbound authorizes an app's request against the outbound listener's
// engine (the egress allowlist). The path is not normalized here: the
// destination's inbound does it.
func (f *Filter) Outbound(w http.ResponseWriter, r *http.Request, e *authz.Engine) bool {
	if e != nil && e.Empty() {
		return true
	}
	req := f.request()
	*req = authz.Request{
		Source:        remoteAddr(r.RemoteAddr),
		DestinationIP: localAddr(r.Context()),
		Method:        r.Method,
		Authority:     r.Host,
		Path:          r.URL.EscapedPath(),
		Headers:       r.Header,
	}
	return f.decide(w, r, e, req, "outbound")
}

// request returns a recycled authz.Request for one decision (decide
// returns it).
func (f *Filter) request() *authz.Request {
	if req, ok := f.reqs.Get().(*authz.Request); ok {
		return req
	}
	return new(authz.Request)
}

// decide evaluates req, logs and counts the decision, answers a denial,
// and recycles req.
func (f *Filter) decide(w http.ResponseWriter, r *http.Request, e *authz.Engine, req *authz.Request, listener string) bool {
	defer func() {
		*req = authz.Request{} // drop the request's strings and headers
		f.reqs.Put(req)
	}()
	d := e.Evaluate(req)
	if d.Audit != "" {
		f.log.Info("authz: audit", "listener", listener, "policy", d.Audit, "peer", req.Principal, "source", r.RemoteAddr,
			"method", req.Method, "authority", req.Authority, "path", req.Path, "allowed", d.Allowed)
	}
	if d.Allowed {
		return true
	}
	f.denied.WithLabelValues(d.Policy).Inc()
	f.log.Warn("authz: denied", "listener", listener, "policy", d.Policy, "filter", d.Filter, "peer", req.Principal,
		"source", r.RemoteAddr, "method", req.Method, "authority", req.Authority, "path", req.Path)
	http.Error(w, "weft: RBAC: access denied", http.StatusForbidden)
	return false
}

// normalize replaces r's path by its normalized form and returns it; on a
// path that cannot be normalized it answers 400.
func normalize(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.URL.EscapedPath()
	n, err := authz.NormalizePath(raw)
	if err != nil {
		http.Error(w, "weft: bad request path", http.StatusBadRequest)
		return "", false
	}
	if n != raw {
		p, err := url.PathUnescape(n)
		if err != nil {
			http.Error(w, "weft: bad request path", http.StatusBadRequest)
			return "", false
		}
		r.URL.Path, r.URL.RawPath = p, n
	}
	return n, true
}

func remoteAddr(s string) netip.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func localAddr(ctx context.Context) netip.Addr {
	a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		// The listeners' case, without formatting and parsing the address.
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
