package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/retry"
	"github.com/weftmesh/weft/sidecar/filter/timeout"
	"github.com/weftmesh/weft/sidecar/inbound"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/transport"
)

// Tables gives the current routing table (an *atomic.Pointer[router.Table]).
type Tables interface {
	Load() *router.Table
}

// Results and reasons of the access log and the counter.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
	resultError   = "error"
)

// Option configures a Handler.
type Option func(*Handler)

// WithResolver sets the resolver for DNS destinations (default: the
// system's).
func WithResolver(r Resolver) Option { return func(h *Handler) { h.resolver = r } }

// WithRegisterer exports weft_egress_requests_total to reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(h *Handler) { h.reg = reg } }

// WithAccessLog sends the access log (JSON lines) to w (default: the
// handler's logger).
func WithAccessLog(w io.Writer) Option {
	return func(h *Handler) { h.access = slog.New(slog.NewJSONHandler(w, nil)) }
}

// WithConnectTimeout bounds each dial to an external address (default
// mesh.DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option { return func(h *Handler) { h.connectTimeout = d } }

// WithTCPMetrics counts the gateway's CONNECT tunnels in t (direction
// inbound, destination the gateway itself, destination_service the
// ExternalService "<namespace>/<name>"); workload and namespace are the
// gateway's, identity its SPIFFE ID.
func WithTCPMetrics(t *metrics.TCP, workload, namespace, identity string) Option {
	return func(h *Handler) { h.tcp, h.self = t, [3]string{workload, namespace, identity} }
}

var headerSourceWorkload = http.CanonicalHeaderKey(mesh.HeaderSourceWorkload)

// Handler is the gateway's request handler.
type Handler struct {
	tcp  *metrics.TCP
	self [3]string // workload, namespace, identity

	tables         Tables
	log            *slog.Logger
	access         *slog.Logger
	resolver       Resolver
	reg            prometheus.Registerer
	requests       *prometheus.CounterVec
	connectTimeout time.Duration

	cur    atomic.Pointer[compiled]
	conns  sync.Map // destination name:port -> *atomic.Int64
	states sync.Map // statsName -> *destState (resilience.go)
	fwd    *proxy.Forwarder
	tr     *http.Transport
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the gateway handler.
func NewHandler(tables Tables, log *slog.Logger, opts ...Option) *Handler {
	h := &Handler{tables: tables, log: log.With("listener", "egress-gateway"), connectTimeout: mesh.DefaultConnectTimeout}
	for _, o := range opts {
		o(h)
	}
	if h.resolver == nil {
		h.resolver = net.DefaultResolver
	}
	if h.access == nil {
		h.access = h.log
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: mesh.MetricEgressRequests,
		Help: "Egress gateway decisions by result, reason and ExternalService.",
	}, []string{"result", "reason", "service"})
	if h.reg != nil {
		if err := h.reg.Register(h.requests); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					h.requests = c
				}
			}
		}
	}
	h.tr = &http.Transport{
		Proxy:                 nil,
		DialContext:           h.dialTarget,
		DialTLSContext:        h.dialTargetTLS,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0,
	}
	h.fwd = proxy.NewForwarder(roundTripper{h.tr}, h.log)
	return h
}

// CloseIdleConnections closes idle upstream connections.
func (h *Handler) CloseIdleConnections() { h.tr.CloseIdleConnections() }

// index returns the compiled egress table of the current snapshot.
func (h *Handler) index() *compiled {
	tbl := h.tables.Load()
	if tbl == nil {
		return nil
	}
	if c := h.cur.Load(); c != nil && c.snap == tbl.Snapshot {
		return c
	}
	c := compile(tbl.Snapshot)
	c.res = make(map[*egress.Destination]*resilience, len(c.pols))
	for d, p := range c.pols {
		c.res[d] = bind(&h.states, d, p, tbl.Metrics, h.log)
	}
	h.cur.Store(c)
	return c
}

// record is one decision, logged when the request ends.
type record struct {
	start             time.Time
	source, dest      string
	service, protocol string
	method, path      string
	result, reason    string
	status            int
	upstream          string
	attempts          int
	bytesIn, bytesOut atomic.Int64
	// connect: a CONNECT tunnel (counted in the TCP metrics); srcWL the
	// caller's workload ("name.namespace", from a verified caller);
	// stream its series once opened.
	connect bool
	srcWL   string
	stream  *metrics.TCPSeries
}

// openTCP counts the record's tunnel opened (once) and returns its series;
// nil without TCP metrics.
func (h *Handler) openTCP(rec *record) *metrics.TCPSeries {
	if h.tcp == nil || !rec.connect || rec.stream != nil {
		return rec.stream
	}
	src, srcNS := rec.srcWL, ""
	if i := strings.LastIndexByte(src, '.'); i >= 0 {
		src, srcNS = src[:i], src[i+1:]
	}
	rec.stream = h.tcp.Series([]string{"inbound", src, srcNS, rec.source, h.self[0], h.self[1], rec.service, h.self[2]})
	if rec.stream != nil {
		rec.stream.Opened.Inc()
	}
	return rec.stream
}

func (h *Handler) finish(rec *record) {
	if s := h.openTCP(rec); s != nil { // opened now if it never carried bytes
		s.Closed.Inc()
	}
	svc := rec.service
	if svc == "" {
		svc = "unknown"
	}
	h.requests.WithLabelValues(rec.result, rec.reason, svc).Inc()
	level := slog.LevelInfo
	if rec.result != resultAllowed {
		level = slog.LevelWarn
	}
	h.access.LogAttrs(context.Background(), level, "egress",
		slog.String("source", rec.source),
		slog.String("destination", rec.dest),
		slog.String("service", svc),
		slog.String("protocol", rec.protocol),
		slog.String("method", rec.method),
		slog.String("path", rec.path),
		slog.String("result", rec.result),
		slog.String("reason", rec.reason),
		slog.Int("status", rec.status),
		slog.String("upstream", rec.upstream),
		slog.Int("attempts", rec.attempts),
		slog.Int64("bytes_sent", rec.bytesOut.Load()),
		slog.Int64("bytes_received", rec.bytesIn.Load()),
		slog.Float64("duration_ms", float64(time.Since(rec.start).Microseconds())/1000),
	)
}

func (rec *record) refuse(w http.ResponseWriter, status int, result, reason, format string, args ...any) {
	rec.result, rec.reason, rec.status = result, reason, status
	proxy.Error(w, status, format, args...)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &record{start: time.Now(), method: r.Method, path: r.URL.Path, dest: r.Host, connect: r.Method == http.MethodConnect}
	defer h.finish(rec) //nolint:contextcheck // the decision log is written after the request, whatever its context
	srcWL := r.Header[headerSourceWorkload]
	delete(r.Header, headerSourceWorkload) // a mesh header: never to an external host
	peer := inbound.PeerFromContext(r.Context())
	if peer == nil || peer.ID.IsZero() {
		rec.refuse(w, http.StatusForbidden, resultDenied, "no_identity", "egress: the caller presented no mesh certificate")
		return
	}
	rec.source = peer.ID.String()
	if len(srcWL) > 0 {
		rec.srcWL = srcWL[0] // a verified caller names its workload
	}
	c := h.index()
	if c == nil || c.ix == nil {
		rec.refuse(w, http.StatusServiceUnavailable, resultError, "no_config", "egress: no egress configuration yet")
		return
	}
	connect := r.Method == http.MethodConnect
	host, portStr, err := net.SplitHostPort(r.Host)
	if err != nil {
		if connect {
			rec.refuse(w, http.StatusBadRequest, resultDenied, "bad_target", "egress: CONNECT target %q is not host:port", r.Host)
			return
		}
		host, portStr = r.Host, "80"
	}
	port64, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port64 == 0 {
		rec.refuse(w, http.StatusBadRequest, resultDenied, "bad_target", "egress: bad port in %q", r.Host)
		return
	}
	port := uint32(port64)
	host = egress.NormalizeHost(host)
	rec.dest = net.JoinHostPort(host, portStr)
	var d *egress.Destination
	ipTarget, ipErr := netip.ParseAddr(host)
	if ipErr == nil {
		// An address names a destination only through a TCP port's
		// addresses: never a way around the host checks.
		if connect {
			d = c.ix.LookupAddress(ipTarget, port)
		}
	} else {
		d = c.ix.Lookup(host, port)
	}
	if d == nil {
		rec.refuse(w, http.StatusForbidden, resultDenied, "not_registered", "egress: %s is not a registered external destination", rec.dest)
		return
	}
	rec.service, rec.protocol = d.Name, d.Protocol
	if connect == (d.Protocol == egress.ProtocolHTTP) {
		if connect {
			rec.refuse(w, http.StatusMethodNotAllowed, resultDenied, "wrong_protocol", "egress: %s is HTTP: send plain HTTP requests", rec.dest)
		} else {
			rec.refuse(w, http.StatusMethodNotAllowed, resultDenied, "wrong_protocol", "egress: %s is %s: use CONNECT", rec.dest, d.Protocol)
		}
		return
	}
	if !d.Allows(rec.source, r.Method, r.URL.Path) {
		rec.refuse(w, http.StatusForbidden, resultDenied, "denied", "egress: %s may not reach %s", rec.source, rec.dest)
		return
	}
	// A Service of type ExternalName: its external name is what the
	// gateway resolves and dials, whichever of its names the caller used.
	dialHost := host
	if d.ExternalName != "" {
		dialHost = egress.NormalizeHost(d.ExternalName)
	}
	release, ok := h.admit(d)
	if !ok {
		rec.refuse(w, http.StatusServiceUnavailable, resultError, "overloaded", "egress: %s: too many connections", rec.dest)
		return
	}
	defer release()
	var addrs []netip.Addr
	switch {
	case ipErr == nil:
		addrs = []netip.Addr{ipTarget}
	case d.Resolution == egress.ResolutionStatic:
		for _, e := range d.Endpoints {
			if a, err := netip.ParseAddr(e); err == nil {
				addrs = append(addrs, a)
			}
		}
	default:
		addrs, err = h.resolver.LookupNetIP(r.Context(), "ip", dialHost)
		if err != nil || len(addrs) == 0 {
			rec.refuse(w, http.StatusBadGateway, resultError, "resolve_failed", "egress: cannot resolve %s: %v", dialHost, err)
			return
		}
	}
	t := &target{host: dialHost, name: host, port: d.Upstream(), addrs: addrs, roots: c.roots[d.Name], rec: rec, timeout: h.connectTimeout}
	proxy.RemoveMeshHeaders(r.Header)
	if connect {
		h.tunnel(w, r, d, t)
		return
	}
	h.forwardHTTP(w, r, d, t, c.res[d])
}

// admit applies the destination's connection limit.
func (h *Handler) admit(d *egress.Destination) (func(), bool) {
	key := d.Name + ":" + strconv.FormatUint(uint64(d.Port), 10)
	v, ok := h.conns.Load(key)
	if !ok {
		v, _ = h.conns.LoadOrStore(key, new(atomic.Int64))
	}
	n := v.(*atomic.Int64)
	limit := int64(d.MaxConnections)
	if limit == 0 {
		limit = egress.DefaultMaxConnections
	}
	if n.Add(1) > limit {
		n.Add(-1)
		return nil, false
	}
	return func() { n.Add(-1) }, true
}

// target is where a request goes: the gateway's own addresses for it.
type target struct {
	// host is the name dialled (SNI and Host upstream); name is the one
	// the caller used (they differ for an ExternalName Service's mesh
	// names).
	host    string
	name    string
	port    uint32
	addrs   []netip.Addr
	roots   *x509.CertPool // nil: the system roots
	rec     *record
	timeout time.Duration
}

type targetKey struct{}

// dial tries each address in turn (connect failure -> the next).
func (t *target) dial(ctx context.Context) (net.Conn, error) {
	var errs []error
	for _, a := range t.addrs {
		addr := netip.AddrPortFrom(a, uint16(t.port)).String() //nolint:gosec // G115: port from a validated table.
		d := net.Dialer{Timeout: t.timeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			t.rec.upstream = addr
			return c, nil
		}
		errs = append(errs, err)
	}
	// Never connected: a connect-failure for the retry policy.
	return nil, &transport.DialError{Addr: t.host, Err: errors.Join(errs...)}
}

func (h *Handler) dialTarget(ctx context.Context, _, _ string) (net.Conn, error) {
	t, _ := ctx.Value(targetKey{}).(*target)
	if t == nil {
		return nil, errors.New("gateway: no target")
	}
	return t.dial(ctx)
}

func (h *Handler) dialTargetTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	raw, err := h.dialTarget(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t, _ := ctx.Value(targetKey{}).(*target)
	cfg := &tls.Config{ServerName: t.host, RootCAs: t.roots, MinVersion: tls.VersionTLS12}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return c, nil
}

// roundTripper adapts the gateway's transport to proxy.Transport: the
// target travels in the request context.
type roundTripper struct{ t *http.Transport }

func (rt roundTripper) RoundTrip(req *http.Request, _ *lb.Endpoint) (*http.Response, error) {
	return rt.t.RoundTrip(req)
}

// countingWriter counts response bytes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// forwardHTTP sends a plain HTTP request to the external host, Host
// preserved, over TLS when the destination originates it, under the
// destination's resilience policy (resilience.go) as the outbound path
// applies a route's: request limits, route timeout (504), tries with the
// retry policy, backoff and retry budget, and the breaker.
func (h *Handler) forwardHTTP(w http.ResponseWriter, r *http.Request, d *egress.Destination, t *target, res *resilience) {
	rec := t.rec
	if res == nil { // every compiled HTTP destination has one
		rec.refuse(w, http.StatusServiceUnavailable, resultError, "no_config", "egress: %s: no resilience policy", rec.dest)
		return
	}
	st := res.stats
	st.Requests.Add(1)
	if !res.limits.StartRequest() {
		st.OverflowMaxRequests.Add(1)
		rec.refuse(w, http.StatusServiceUnavailable, resultError, "overloaded", "egress: %s: too many requests in flight", rec.dest)
		return
	}
	defer res.limits.EndRequest()

	ctx, cancel := timeout.Request(r.Context(), res.timeout)
	defer cancel()
	pol := res.retry
	var body *retry.Body
	var tee *retry.Tee // a streamed body (unknown length), sent as it is read
	replayable := false
	if pol.NumRetries > 0 {
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			tee = retry.NewTee(countingReader{r.Body, &rec.bytesIn}, mesh.DefaultRetryBufferBytes)
			defer func() { _ = tee.Close() }() // after the response is copied: stops its pump
		} else {
			var err error
			if body, replayable, err = retry.BufferBody(r, mesh.DefaultRetryBufferBytes); err != nil {
				rec.refuse(w, http.StatusBadRequest, resultError, "bad_request", "egress: cannot read the request body: %v", err)
				return
			}
		}
	}
	out := proxy.Prepare(r)
	out.URL.Scheme = "http"
	if d.OriginateTLS {
		out.URL.Scheme = "https"
	}
	out.URL.Host = net.JoinHostPort(t.host, strconv.FormatUint(uint64(t.port), 10))
	out.Host = r.Host
	if t.host != t.name {
		// An ExternalName Service called by a mesh name: the external
		// host is addressed by its own name.
		out.Host = t.host
		defaultPort := uint32(80)
		if d.OriginateTLS {
			defaultPort = 443
		}
		if t.port != defaultPort {
			out.Host = out.URL.Host
		}
	}
	switch {
	case body != nil:
		rec.bytesIn.Store(body.Len())
	case tee != nil: // counts as it is read
	case out.Body != nil:
		out.Body = countingReader{out.Body, &rec.bytesIn}
	}

	var (
		resp       *http.Response
		err        error
		lastStatus int // of a retried response
		retrying   bool
	)
	endRetry := func() {
		if retrying {
			res.limits.EndRetry()
			retrying = false
		}
	}
	defer endRetry()
	for try := 1; ; try++ {
		if try > 1 {
			if _, ok := res.limits.StartRetry(); !ok {
				st.RetryBudgetExhausted.Add(1)
				break
			}
			retrying = true
			st.Retries.Add(1)
			if b := pol.Backoff(try - 1); b > 0 {
				tm := time.NewTimer(b)
				select {
				case <-tm.C:
				case <-ctx.Done():
					tm.Stop()
				}
			}
			if ctx.Err() != nil {
				h.deadline(w, r, ctx, rec, st)
				return
			}
		}
		done, ok := res.breaker.Allow()
		if !ok {
			if try == 1 {
				st.NoHealthy.Add(1)
				rec.refuse(w, http.StatusServiceUnavailable, resultError, "ejected", "egress: %s: ejected by outlier detection after repeated failures", rec.dest)
				return
			}
			break
		}
		tryCtx, tryCancel := timeout.Try(ctx, pol.PerTryTimeout)
		req := out.WithContext(context.WithValue(tryCtx, targetKey{}, t))
		if body != nil {
			req.Body, req.ContentLength = body.Reader(), body.Len()
			b := body
			req.GetBody = func() (io.ReadCloser, error) { return b.Reader(), nil }
		} else if tee != nil {
			req.Body = tee.Try(tryCtx)
		}
		st.Attempts.Add(1)
		rec.attempts = try
		resp, err = h.fwd.SendTry(req, nil) //nolint:bodyclose // closed below when retried, else by WriteResponse
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		if err != nil {
			switch timeout.Cause(tryCtx) {
			case timeout.RouteTimeout:
				tryCancel()
				done(false)
				h.deadline(w, r, ctx, rec, st)
				return
			case timeout.ClientGone:
				tryCancel()
				done(true)
				rec.result, rec.reason = resultError, "client_gone"
				return
			case timeout.TryTimeout:
				st.PerTryTimeouts.Add(1)
			}
		}
		done(err == nil && status < 500)
		cond := retry.Classify(status, err, false)
		if tee != nil && body == nil {
			body, replayable = tee.AfterFailedTry()
		}
		again := cond != 0 && try <= pol.NumRetries && pol.Retryable(r.Method, status, cond) &&
			(replayable || cond == retry.ConnectFailure && body == nil && r.ContentLength == 0)
		if !again {
			// The try's context stays alive while the body is copied.
			defer tryCancel()
			break
		}
		if resp != nil {
			_ = resp.Body.Close()
			resp, lastStatus = nil, status
		}
		tryCancel()
		endRetry()
	}
	if resp == nil && err == nil {
		// A retried response, and no further try allowed (budget or
		// breaker): its status, without its body.
		rec.refuse(w, lastStatus, resultError, "upstream_failed", "egress: %s: upstream answered %d on every try", rec.dest, lastStatus)
		return
	}
	if err != nil {
		rec.refuse(w, http.StatusBadGateway, resultError, "upstream_failed", "egress: %s: %v", rec.dest, err)
		return
	}
	rec.result, rec.reason, rec.status = resultAllowed, "", resp.StatusCode
	h.fwd.WriteResponse(countingWriter{w, &rec.bytesOut}, r, resp, &lb.Endpoint{Addr: rec.upstream}, d.Name)
}

// deadline answers a request whose route timeout expired: 504, or nothing
// when the client went away first.
func (h *Handler) deadline(w http.ResponseWriter, r *http.Request, ctx context.Context, rec *record, st *metrics.Stats) {
	if r.Context().Err() != nil || timeout.Cause(ctx) != timeout.RouteTimeout {
		rec.result, rec.reason = resultError, "client_gone"
		return
	}
	st.RequestTimeouts.Add(1)
	rec.refuse(w, http.StatusGatewayTimeout, resultError, "timeout", "egress: %s: upstream request timeout", rec.dest)
}

// tunnel serves an allowed CONNECT: for TLS the ClientHello's SNI is
// checked before anything is dialled.
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request, d *egress.Destination, t *target) {
	rec := t.rec
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	var (
		up      net.Conn
		prefix  []byte
		err     error
		tlsDest = d.Protocol == egress.ProtocolTLS
	)
	if !tlsDest {
		if up, err = t.dial(r.Context()); err != nil {
			rec.refuse(w, http.StatusBadGateway, resultError, "upstream_failed", "egress: %s: %v", rec.dest, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	rec.status = http.StatusOK
	if err := rc.Flush(); err != nil {
		if up != nil {
			_ = up.Close()
		}
		rec.result, rec.reason = resultError, "client_gone"
		return
	}
	body := bufio.NewReaderSize(r.Body, 4096)
	if tlsDest {
		var sni string
		sni, prefix, err = peekSNI(body) //nolint:contextcheck // bounded by the connection deadline, not a context
		switch {
		case err != nil:
			rec.result, rec.reason = resultDenied, "sni_mismatch"
			h.log.Warn("egress: refused CONNECT: no TLS ClientHello", "source", rec.source, "destination", rec.dest, "error", err)
			return
		case sni == "" || !egress.MatchHost(t.name, sni) && !egress.MatchHost(t.host, sni):
			rec.result, rec.reason = resultDenied, "sni_mismatch"
			h.log.Warn("egress: refused CONNECT: SNI does not match the target", "source", rec.source, "destination", rec.dest, "sni", sni)
			return
		}
		if up, err = t.dial(r.Context()); err != nil {
			rec.result, rec.reason = resultError, "upstream_failed"
			return
		}
	}
	rec.result = resultAllowed
	defer func() { _ = up.Close() }()
	stream := h.openTCP(rec)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(prefix) > 0 {
			n, err := up.Write(prefix)
			rec.bytesIn.Add(int64(n))
			stream.AddReceived(n)
			if err != nil {
				return
			}
		}
		n, _ := io.Copy(stream.CountReceived(up), body)
		rec.bytesIn.Add(n)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			stream.AddSent(m)
			if werr != nil {
				break
			}
			rec.bytesOut.Add(int64(n))
			_ = rc.Flush()
		}
		if err != nil {
			break
		}
	}
	_ = up.Close()
	select {
	case <-done:
	case <-r.Context().Done():
	}
}
