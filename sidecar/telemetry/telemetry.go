package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/accesslog"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/tracing"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Directions.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Response flags (weft.response_flags, access log "flags").
const (
	FlagRetried         = "retried"
	FlagOverloaded      = "overloaded"
	FlagBreakerOpen     = "breaker_open"
	FlagNoHealthy       = "no_healthy"
	FlagTimeout         = "timeout"
	FlagDenied          = "denied"
	FlagUpstreamFailure = "upstream_failure"
)

var (
	headerSourceWorkload = http.CanonicalHeaderKey(mesh.HeaderSourceWorkload)
	headerOverloaded     = http.CanonicalHeaderKey(mesh.HeaderOverloaded)
	headerTimeout        = http.CanonicalHeaderKey(mesh.HeaderTimeout)
)

// Self is the sidecar's own workload.
type Self struct {
	// Workload and Namespace of the sidecar; Identity its SPIFFE ID ("" in
	// plaintext mode).
	Workload, Namespace, Identity string
}

// Observer makes each request's telemetry.
type Observer struct {
	self   Self
	selfWL []string
	tracer *tracing.Tracer
	reqs   *metrics.Requests
	tcp    *metrics.TCP
	alog   *accesslog.Logger
	pool   sync.Pool
}

// Option configures an Observer.
type Option func(*Observer)

// WithTCP counts TCP streams (CONNECT requests: captured raw TCP and
// tunnels) in t instead of the request metrics.
func WithTCP(t *metrics.TCP) Option { return func(o *Observer) { o.tcp = t } }

// New returns an Observer; reqs and alog may be nil.
func New(self Self, t *tracing.Tracer, reqs *metrics.Requests, alog *accesslog.Logger, opts ...Option) *Observer {
	o := &Observer{self: self, selfWL: []string{mesh.NodeID(self.Workload, self.Namespace)}, tracer: t, reqs: reqs, alog: alog}
	for _, opt := range opts {
		opt(o)
	}
	o.pool.New = func() any { return new(Request) }
	return o
}

// Parse reads the tracing and access log of a snapshot's listeners; an
// error NACKs the snapshot.
func Parse(s *xdsclient.Snapshot) (tracing.Config, accesslog.Config, error) {
	tc, err := tracing.Parse(s.Listeners)
	if err != nil {
		return tc, accesslog.Config{}, fmt.Errorf("telemetry: %w", err)
	}
	ms, err := tracing.HCMs(s.Listeners)
	if err != nil {
		return tc, accesslog.Config{}, fmt.Errorf("telemetry: %w", err)
	}
	ac, err := accesslog.Parse(ms)
	if err != nil {
		return tc, ac, fmt.Errorf("telemetry: %w", err)
	}
	return tc, ac, nil
}

// Apply installs the snapshot's tracing and access log configuration.
func (o *Observer) Apply(s *xdsclient.Snapshot) error {
	tc, ac, err := Parse(s)
	if err != nil {
		return err
	}
	if o.alog != nil {
		o.alog.Apply(ac)
	}
	return o.tracer.Apply(tc)
}

// Request is one request's telemetry record.
type Request struct {
	o         *Observer
	dir       string
	start     time.Time
	rw        responseWriter
	body      countingBody
	span      trace.Span
	traced    bool
	route     string
	cluster   string
	upstream  string
	srcWL     string
	srcID     string
	dstWL     string
	dstID     string
	dstSvc    string
	attempts  int
	flags     uint8
	upstreamD time.Duration
	upFailed  bool
	sc        trace.SpanContext
	// parent is the incoming span context of an outbound request (the
	// parent of a span for a request that made no attempt).
	parent trace.SpanContext
	// tcp: a CONNECT (a TCP stream), counted in the TCP metrics;
	// stream is its series once OpenTCP counted it opened.
	tcp    bool
	stream *metrics.TCPSeries
}

func (o *Observer) begin(dir string, w http.ResponseWriter, r *http.Request) *Request {
	rq := o.pool.Get().(*Request)
	*rq = Request{o: o, dir: dir, start: time.Now(), tcp: r.Method == http.MethodConnect}
	rq.rw = responseWriter{ResponseWriter: w, method: r.Method, host: r.Host, path: r.URL.Path, proto: r.Proto}
	if r.Body != nil && r.Body != http.NoBody {
		rq.body = countingBody{rc: r.Body}
		r.Body = &rq.body
	}
	return rq
}

// Inbound starts the record and SERVER span of a request from a peer; the
// returned writer and request replace w and r. The request is r itself
// unless the span is traced (then a copy whose context carries the span);
// the handler passes the record on to whatever notes the request.
func (o *Observer) Inbound(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, *Request) {
	rq := o.begin(Inbound, w, r)
	if v := r.Header[headerSourceWorkload]; len(v) > 0 {
		rq.srcWL = v[0]
		delete(r.Header, headerSourceWorkload)
	}
	rq.dstWL, rq.dstID = o.selfWL[0], o.self.Identity
	ctx := r.Context()
	if o.tracer.Config().Enabled() || o.alog != nil && o.alog.Enabled() {
		// The incoming trace context parents the SERVER span and names
		// the trace in the access log; with neither on nothing reads it,
		// so a caller's traceparent or B3 headers are not parsed (about
		// ten allocations per request), only passed on to the app.
		ctx = tracing.Extract(ctx, r.Header)
	}
	ctx, rq.span, rq.traced = o.tracer.Start(ctx, r.Method, trace.SpanKindServer)
	if rq.traced {
		o.tracer.Inject(ctx, r.Header)
		r = r.WithContext(ctx)
	}
	return &rq.rw, r, rq
}

// Outbound starts the record of a request from the app. The returned
// request is r itself unless tracing is on and r carries a trace context
// (then a copy whose context carries it, the parent of the try spans).
func (o *Observer) Outbound(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, *Request) {
	rq := o.begin(Outbound, w, r)
	rq.srcWL, rq.srcID = o.selfWL[0], o.self.Identity
	delete(r.Header, headerSourceWorkload)
	if o.tracer.Config().Enabled() {
		if tracing.HasPropagationHeader(r.Header) {
			r = r.WithContext(tracing.Extract(r.Context(), r.Header))
		}
		rq.parent = trace.SpanContextFromContext(r.Context())
	}
	return &rq.rw, r, rq
}

// Note records the routing decision. peerIdentity is the verified peer
// SPIFFE ID on the inbound listener ("" for plaintext). Nil-safe.
func (rq *Request) Note(route, cluster string, ep *lb.Endpoint, peerIdentity string) {
	if rq == nil {
		return
	}
	rq.route, rq.cluster = route, cluster
	if ep != nil {
		rq.upstream = ep.Addr
	}
	if rq.dir == Inbound {
		if ep != nil {
			rq.attempts = 1 // one try to the app
		}
		rq.srcID = peerIdentity
		if peerIdentity == "" {
			rq.srcWL = "" // only a verified peer may name itself
		}
		return
	}
	rq.dstSvc = serviceOf(cluster)
}

// NotePeer records the verified peer identity of an inbound request as
// soon as it is known ("" for plaintext: then the source workload the
// peer named is dropped), so a request refused before routing (RBAC,
// STRICT) is labelled with who sent it. Nil-safe.
func (rq *Request) NotePeer(peerIdentity string) {
	if rq == nil || rq.dir != Inbound {
		return
	}
	rq.srcID = peerIdentity
	if peerIdentity == "" {
		rq.srcWL = ""
	}
}

// NoteService records the service an inbound request is for (the
// inbound cluster's service for the request's host). Nil-safe.
func (rq *Request) NoteService(svc string) {
	if rq != nil {
		rq.dstSvc = svc
	}
}

// NoteTunnel records the endpoint an outbound TCP stream goes to and, for
// a tunnelled stream, writes the source workload into the CONNECT
// request's headers (as StartAttempt does for an HTTP try). Nil-safe.
func (rq *Request) NoteTunnel(req *http.Request, ep *lb.Endpoint) {
	if rq == nil {
		return
	}
	if ep != nil {
		rq.upstream, rq.dstWL, rq.dstID = ep.Addr, ep.Workload, ep.Identity
	}
	if req != nil {
		req.Header[headerSourceWorkload] = rq.o.selfWL
	}
}

// OpenTCP counts the request's TCP stream opened, with the labels known
// now (call it once the stream is routed and about to carry bytes), and
// returns the series to count its bytes in; Finish counts it closed. A
// stream that never opens (refused, upstream unreachable) is counted
// opened and closed by Finish. Nil-safe; nil without TCP metrics.
func (rq *Request) OpenTCP() *metrics.TCPSeries {
	if rq == nil {
		return nil
	}
	if rq.stream != nil || !rq.tcp || rq.o.tcp == nil {
		return rq.stream
	}
	var lv [9]string
	rq.labels(&lv)
	rq.stream = rq.o.tcp.Series(lv[:8])
	if rq.stream != nil {
		rq.stream.Opened.Inc()
	}
	return rq.stream
}

// labels fills the request labels but response_code.
func (rq *Request) labels(lv *[9]string) {
	lv[0] = rq.dir
	lv[1], lv[2] = splitWorkload(rq.srcWL)
	lv[3] = rq.srcID
	lv[4], lv[5] = splitWorkload(rq.dstWL)
	lv[6] = rq.dstSvc
	lv[7] = rq.dstID
}

// Flag sets a response flag. Nil-safe.
func (rq *Request) Flag(f string) {
	if rq == nil {
		return
	}
	rq.flags |= flagBit(f)
}

var flagNames = []string{FlagRetried, FlagOverloaded, FlagBreakerOpen, FlagNoHealthy, FlagTimeout, FlagDenied, FlagUpstreamFailure}

func flagBit(f string) uint8 {
	for i, n := range flagNames {
		if n == f {
			return 1 << i
		}
	}
	return 0
}

func (rq *Request) flagString() string { return flagString(rq.flags) }

func flagString(flags uint8) string {
	if flags == 0 {
		return ""
	}
	var b strings.Builder
	for i, n := range flagNames {
		if flags&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// serviceOf returns the service host of an outbound cluster name
// (outbound|<port>||<fqdn> -> <fqdn>).
func serviceOf(cluster string) string {
	if i := strings.LastIndex(cluster, "||"); i >= 0 {
		return cluster[i+2:]
	}
	return ""
}

// StartAttempt starts the CLIENT span of one try to ep and writes its
// context (and the source workload) into req's headers. Nil-safe.
func (rq *Request) StartAttempt(req *http.Request, ep *lb.Endpoint, try int) (*http.Request, trace.Span) {
	if rq == nil {
		return req, nil
	}
	rq.attempts = try
	rq.upstream, rq.dstWL, rq.dstID = ep.Addr, ep.Workload, ep.Identity
	if try > 1 {
		rq.flags |= flagBit(FlagRetried)
	}
	req.Header[headerSourceWorkload] = rq.o.selfWL
	ctx, sp, on := rq.o.tracer.Start(req.Context(), req.Method, trace.SpanKindClient)
	if !on {
		return req, nil
	}
	rq.o.tracer.Inject(ctx, req.Header)
	rq.sc = sp.SpanContext()
	if sp.IsRecording() {
		sp.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("url.path", req.URL.Path),
			attribute.String("server.address", req.Host),
			attribute.String("weft.route", rq.route),
			attribute.String("weft.cluster", rq.cluster),
			attribute.String("weft.upstream", ep.Addr),
			attribute.String("weft.source.workload", rq.srcWL),
			attribute.String("weft.source.identity", rq.srcID),
			attribute.String("weft.destination.workload", ep.Workload),
			attribute.String("weft.destination.identity", ep.Identity),
			attribute.String("weft.destination.service", rq.dstSvc),
			attribute.Int("weft.attempt", try),
		)
	}
	return req.WithContext(ctx), sp
}

// EndAttempt ends a try's span with its outcome (status 0: no response).
func (rq *Request) EndAttempt(sp trace.Span, start time.Time, status int, err error) {
	if rq == nil {
		return
	}
	rq.upstreamD = time.Since(start)
	rq.upFailed = err != nil
	if sp == nil {
		return
	}
	if sp.IsRecording() {
		if status != 0 {
			sp.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		var f uint8
		if rq.attempts > 1 {
			f |= flagBit(FlagRetried)
		}
		if err != nil {
			f |= flagBit(FlagUpstreamFailure)
			sp.SetStatus(codes.Error, err.Error())
		} else if status >= 500 {
			sp.SetStatus(codes.Error, "")
		}
		if f != 0 {
			sp.SetAttributes(attribute.String("weft.response_flags", flagString(f)))
		}
	}
	sp.End()
}

// Finish ends the request: span, metrics, access log. The record goes
// back to the pool.
func (o *Observer) Finish(rq *Request) {
	if rq == nil {
		return
	}
	status := rq.rw.status
	if status == 0 {
		status = http.StatusOK
	}
	if h := rq.rw.hdr; h != nil {
		if v := h[headerOverloaded]; len(v) > 0 {
			if v[0] == mesh.OverloadNoHealthy {
				rq.flags |= flagBit(FlagNoHealthy)
			} else {
				rq.flags |= flagBit(FlagOverloaded)
			}
		}
		if len(h[headerTimeout]) > 0 {
			rq.flags |= flagBit(FlagTimeout)
		}
	}
	if rq.upFailed {
		rq.flags |= flagBit(FlagUpstreamFailure)
	}
	if status == http.StatusForbidden && rq.upstream == "" {
		rq.flags |= flagBit(FlagDenied)
	}
	d := time.Since(rq.start)
	if rq.dir == Outbound && rq.attempts == 0 && !rq.tcp {
		rq.endUntried(status)
	}
	if rq.traced {
		if rq.span.IsRecording() {
			rq.span.SetAttributes(
				attribute.String("http.request.method", methodOf(rq)),
				attribute.Int("http.response.status_code", status),
				attribute.String("url.path", rq.rw.path),
				attribute.String("server.address", rq.rw.host),
				attribute.String("network.protocol.version", protocolVersion(rq.rw.proto)),
				attribute.String("weft.destination.service", rq.dstSvc),
				attribute.String("weft.route", rq.route),
				attribute.String("weft.cluster", rq.cluster),
				attribute.String("weft.upstream", rq.upstream),
				attribute.String("weft.source.workload", rq.srcWL),
				attribute.String("weft.source.identity", rq.srcID),
				attribute.String("weft.destination.workload", rq.dstWL),
				attribute.String("weft.destination.identity", rq.dstID),
			)
			if f := rq.flagString(); f != "" {
				rq.span.SetAttributes(attribute.String("weft.response_flags", f))
			}
			if status >= 500 {
				rq.span.SetStatus(codes.Error, "")
			}
		}
		rq.span.End()
	}
	switch {
	case rq.tcp:
		if s := rq.OpenTCP(); s != nil { // opened now if it never carried bytes
			s.Closed.Inc()
		}
	case o.reqs != nil:
		var lv [9]string
		rq.labels(&lv)
		lv[8] = statusLabel(status)
		o.reqs.Observe(lv[:], d.Seconds(), rq.body.n, rq.rw.n)
	}
	if o.alog != nil && o.alog.Wants(status) {
		o.alog.Log(rq.entry(status, d))
	}
	rq.span = nil
	rq.stream = nil
	rq.rw = responseWriter{}
	rq.body = countingBody{}
	o.pool.Put(rq)
}

func methodOf(rq *Request) string { return rq.rw.method }

// protocolVersion is network.protocol.version: "HTTP/1.1" -> "1.1",
// "HTTP/2.0" -> "2".
func protocolVersion(proto string) string {
	v := strings.TrimPrefix(proto, "HTTP/")
	if v == "2.0" {
		return "2"
	}
	return v
}

// endUntried records an outbound request that reached no upstream (denied,
// no healthy endpoint, breaker open, a cluster limit, no route) as one
// CLIENT span from the request's start, so the refusal and its flags are
// visible in the trace. Nothing when tracing is off.
func (rq *Request) endUntried(status int) {
	ctx := context.Background()
	if rq.parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, rq.parent)
	}
	_, sp, on := rq.o.tracer.Start(ctx, rq.rw.method, trace.SpanKindClient, trace.WithTimestamp(rq.start))
	if !on {
		return
	}
	rq.sc = sp.SpanContext()
	if sp.IsRecording() {
		sp.SetAttributes(
			attribute.String("http.request.method", rq.rw.method),
			attribute.String("url.path", rq.rw.path),
			attribute.String("server.address", rq.rw.host),
			attribute.Int("http.response.status_code", status),
			attribute.String("weft.route", rq.route),
			attribute.String("weft.cluster", rq.cluster),
			attribute.String("weft.source.workload", rq.srcWL),
			attribute.String("weft.source.identity", rq.srcID),
			attribute.String("weft.destination.service", rq.dstSvc),
			attribute.Int("weft.attempt", 0),
		)
		if f := rq.flagString(); f != "" {
			sp.SetAttributes(attribute.String("weft.response_flags", f))
		}
		if status >= 500 || status == http.StatusForbidden {
			sp.SetStatus(codes.Error, "")
		}
	}
	sp.End()
}

func (rq *Request) entry(status int, d time.Duration) *accesslog.Entry {
	e := &accesslog.Entry{
		Time: rq.start.UTC(), Direction: rq.dir, Method: rq.rw.method, Authority: rq.rw.host, Path: rq.rw.path,
		Protocol: rq.rw.proto, Status: status, Flags: rq.flagString(), Route: rq.route, Cluster: rq.cluster,
		Upstream: rq.upstream, Attempts: rq.attempts, SourceIdentity: rq.srcID, DestinationIdentity: rq.dstID,
		SourceWorkload: rq.srcWL, DestinationWorkload: rq.dstWL, BytesReceived: rq.body.n, BytesSent: rq.rw.n,
		DurationMS: float64(d.Microseconds()) / 1000, UpstreamDurationMS: float64(rq.upstreamD.Microseconds()) / 1000,
	}
	c := rq.sc
	if rq.span != nil {
		c = rq.span.SpanContext()
	}
	if c.IsValid() {
		e.TraceID, e.SpanID = c.TraceID().String(), c.SpanID().String()
	}
	return e
}

// statusLabels holds the response_code label of every status 100-599, so
// a request does not format (and allocate) it. Read-only after init.
var statusLabels = func() (t [600]string) {
	for c := 100; c < len(t); c++ {
		t[c] = strconv.Itoa(c)
	}
	return t
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// splitWorkload splits "name.namespace".
func splitWorkload(wl string) (string, string) {
	if i := strings.LastIndexByte(wl, '.'); i >= 0 {
		return wl[:i], wl[i+1:]
	}
	return wl, ""
}

// responseWriter records the status and the bytes written.
type responseWriter struct {
	http.ResponseWriter
	status int
	n      int64
	hdr    http.Header
	// request facts for the access log and span
	method, host, path, proto string
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.hdr = w.ResponseWriter.Header()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.hdr = w.ResponseWriter.Header()
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Flush implements http.Flusher (streamed responses).
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the request body bytes read.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// restReader is a request body that gives all that is left of it at once
// once the client has ended it (h2server's; retry.Tee takes a gRPC unary
// call's message so, with no goroutine of its own).
type restReader interface {
	ReadRest() (rest []byte, whole bool)
}

// ReadRest passes on the server's body's ReadRest, counting what it gives;
// false when the body has none.
func (b *countingBody) ReadRest() ([]byte, bool) {
	rr, ok := b.rc.(restReader)
	if !ok {
		return nil, false
	}
	rest, whole := rr.ReadRest()
	b.n += int64(len(rest))
	return rest, whole
}
