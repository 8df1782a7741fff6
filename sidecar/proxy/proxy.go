package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/internal/httptoken"
	"github.com/weftmesh/weft/sidecar/internal/resend"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/transport"
)

// Transport sends a request to an endpoint. req.URL carries the path and
// query; the transport sets scheme and host for the hop it takes.
type Transport interface {
	RoundTrip(req *http.Request, ep *lb.Endpoint) (*http.Response, error)
}

var _ Transport = (*transport.Mesh)(nil)

// endpointNeeder is implemented by a Transport whose dialers read the
// endpoint from the request context only for some endpoints
// (transport.Mesh): the others' requests go without that context layer.
type endpointNeeder interface {
	NeedsEndpoint(ep *lb.Endpoint) bool
}

// requestReleaser is implemented by a Transport that can tell when it
// keeps nothing of a request once RoundTrip failed or the response's body
// was closed (transport.Mesh): those requests are recycled.
type requestReleaser interface {
	ReleasesRequest(req *http.Request, ep *lb.Endpoint) bool
	// RecycleResponse takes back a response the caller closed and is
	// done with (a no-op for one it cannot reuse).
	RecycleResponse(resp *http.Response)
}

// Forwarder forwards requests through a Transport.
type Forwarder struct {
	t     Transport
	needs endpointNeeder  // nil: every request carries its endpoint
	rel   requestReleaser // nil: no request is released
	log   *slog.Logger
	// hops recycles the hop requests the transport released (*Hop).
	hops sync.Pool
}

// NewForwarder returns a Forwarder that sends with t.
func NewForwarder(t Transport, log *slog.Logger) *Forwarder {
	f := &Forwarder{t: t, log: log}
	f.needs, _ = t.(endpointNeeder)
	f.rel, _ = t.(requestReleaser)
	return f
}

// Releases reports whether the transport keeps nothing of req, sent to
// ep, once RoundTrip failed or the response's body was closed (then the
// hop may be recycled, and the server's request whose header map req
// shares may be given back: h1server.Recycler).
func (f *Forwarder) Releases(req *http.Request, ep *lb.Endpoint) bool {
	return f.rel != nil && f.rel.ReleasesRequest(req, ep)
}

// needsEndpoint reports whether a request to ep must carry ep in its
// context for the transport's dialers (transport.WithEndpoint).
func (f *Forwarder) needsEndpoint(ep *lb.Endpoint) bool {
	return f.needs == nil || f.needs.NeedsEndpoint(ep)
}

// Hop is one try's request with its own path-only URL: one allocation
// for both, recycled by Recycle once the transport released it.
type Hop struct {
	req http.Request
	url url.URL
}

// Request returns the hop's request.
func (h *Hop) Request() *http.Request { return &h.req }

// newHop returns a Hop, recycled when there is one.
func (f *Forwarder) newHop() *Hop {
	if h, ok := f.hops.Get().(*Hop); ok {
		return h
	}
	return new(Hop)
}

// Recycle gives back a try: its Hop and its response (nil when
// RoundTrip failed). Call it only when Releases said so for the request
// sent (h's, or one derived from it with WithContext) and once resp's
// body is closed, and use nothing of either afterwards (values taken from
// them, such as header value slices and the status, stay valid).
func (f *Forwarder) Recycle(h *Hop, resp *http.Response) {
	if resp != nil && f.rel != nil {
		f.rel.RecycleResponse(resp)
	}
	*h = Hop{}
	f.hops.Put(h)
}

// send sends the one try of r to ep (Forward, ForwardToApp) and answers
// with answer; it reports whether the transport released the request
// (r's header map is the hop's).
func (f *Forwarder) send(r *http.Request, ep *lb.Endpoint, answer func(*http.Response, error)) (released bool) {
	var p Prepared // on the stack: TryOf copies it into the hop
	p.Prepare(r)
	h := f.TryOf(r.Context(), &p, ep)
	released = f.Releases(&h.req, ep)
	resp, err := f.t.RoundTrip(&h.req, ep) //nolint:bodyclose // answer closes it (WriteResponse)
	answer(resp, err)
	if released {
		f.Recycle(h, resp)
	}
	return released
}

// Canonical forms of the mesh headers.
var (
	headerTargetPort     = http.CanonicalHeaderKey(mesh.HeaderTargetPort)
	headerPeerIdentity   = http.CanonicalHeaderKey(mesh.HeaderPeerIdentity)
	headerAppUnreachable = http.CanonicalHeaderKey(mesh.HeaderAppUnreachable)
)

// hopHeaders are removed on every hop (RFC 9110, 7.6.1, and the usual
// proxy extras).
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Forward sends r to ep and copies the response to w. cluster names the
// upstream in errors and logs. It is one try, no retries. released: the
// transport keeps nothing of r (Releases), so a server may recycle it
// once the handler returns.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, ep *lb.Endpoint, cluster string) (released bool) {
	// One copy of the request with its URL (carrying the endpoint for the
	// dialers only when they need it).
	return f.send(r, ep, func(resp *http.Response, err error) {
		if err != nil {
			f.Fail(w, r, err, ep, cluster)
			return
		}
		f.WriteResponse(w, r, resp, ep, cluster)
	})
}

// ForwardToApp is Forward for the inbound listener, whose endpoint is the
// workload's own app: a failure to connect to it is answered 503 with
// mesh.HeaderAppUnreachable (the request never reached the app, so the
// calling sidecar may send it to another endpoint), and so is an
// idempotent request without a body whose connection the app closed
// before answering (an app going away closes its keep-alive connections;
// sending such a request again elsewhere is safe whether or not it got
// there). That header is removed from the app's own responses. released
// is Forward's.
func (f *Forwarder) ForwardToApp(w http.ResponseWriter, r *http.Request, ep *lb.Endpoint, cluster string) (released bool) {
	return f.send(r, ep, func(resp *http.Response, err error) {
		if err != nil {
			f.appFailed(w, r, err, ep, cluster)
			return
		}
		delete(resp.Header, headerAppUnreachable) // Del would canonicalize (allocate) the name each time
		f.WriteResponse(w, r, resp, ep, cluster)
	})
}

// appFailed answers ForwardToApp's failed try.
func (f *Forwarder) appFailed(w http.ResponseWriter, r *http.Request, err error, ep *lb.Endpoint, cluster string) {
	if r.Context().Err() == nil {
		var de *transport.DialError
		if errors.As(err, &de) {
			f.log.Info("app connect failed", "cluster", cluster, "endpoint", ep.Addr, "error", de.Err)
			w.Header().Set(mesh.HeaderAppUnreachable, "1")
			Error(w, http.StatusServiceUnavailable, "app unreachable: %s: %v", de.Addr, de.Err)
			return
		}
		if resend.PeerClosed(err) && idempotentNoBody(r) {
			f.log.Info("app closed the connection before answering", "cluster", cluster, "endpoint", ep.Addr, "error", err)
			w.Header().Set(mesh.HeaderAppUnreachable, "1")
			Error(w, http.StatusServiceUnavailable, "app unreachable: %s closed the connection before answering", ep.Addr)
			return
		}
	}
	f.Fail(w, r, err, ep, cluster)
}

// Prepare turns the server's request into the upstream request: a shallow
// copy with a path-only URL and without hop-by-hop headers (the header map
// is r's, which the handler owns). It can be sent several times (with
// WithContext and a fresh body each time).
func Prepare(r *http.Request) *http.Request {
	out := new(http.Request)
	*out = *r
	prepareInPlace(out, r)
	return out
}

// Prepared is a request prepared for its tries (Prepare's work), with its
// path-only URL kept apart, for a caller that keeps it on its stack (the
// outbound listener): TryOf copies both into each try's request, in one
// allocation.
type Prepared struct {
	req http.Request
	url url.URL
}

// Prepare does the package's Prepare into p without allocating. Request
// reads it.
func (p *Prepared) Prepare(r *http.Request) {
	p.req = *r
	p.req.URL = nil // each try has its own copy of p.url
	p.url = url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	prepareHeaders(&p.req, r)
}

// Request returns p's request, to read (method, protocol, headers); its
// URL is nil: the path and query are in each try's request.
func (p *Prepared) Request() *http.Request { return &p.req }

// TryOf returns one try of p to ep: a copy of the request with its own
// copy of the URL, in one allocation (none when a recycled Hop is at
// hand), whose context is ctx, the try's, with ep added when the
// transport's dialers need it (the endpoint's connect timeout is not
// their default). Send its Request with SendTry (it saves the copy Send
// makes), and Recycle it when Releases says the transport is done with
// it.
func (f *Forwarder) TryOf(ctx context.Context, p *Prepared, ep *lb.Endpoint) *Hop {
	if f.needsEndpoint(ep) {
		ctx = transport.WithEndpoint(ctx, ep)
	}
	h := f.newHop()
	h.req = *p.req.WithContext(ctx)
	h.url = p.url
	h.req.URL = &h.url
	return h
}

// prepareInPlace does Prepare's work on out, a shallow copy of r.
func prepareInPlace(out, r *http.Request) {
	out.URL = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	prepareHeaders(out, r)
}

// prepareHeaders is prepareInPlace but for the URL, which the caller has
// set.
func prepareHeaders(out, r *http.Request) {
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	teTrailers := httptoken.Any(r.Header["Te"], "trailers")
	RemoveHopHeaders(out.Header)
	if teTrailers {
		out.Header["Te"] = []string{"trailers"}
	}
}

// Send sends one try of out (from Prepare, with the try's context) to ep.
// Its copy of out carries ep in its context when the dialers need it.
func (f *Forwarder) Send(out *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	ctx := out.Context()
	if f.needsEndpoint(ep) {
		ctx = transport.WithEndpoint(ctx, ep)
	}
	return f.t.RoundTrip(out.WithContext(ctx), ep)
}

// SendTry sends req, from TryOf (or derived from it with WithContext, so
// its context still carries what TryOf added), to ep as it is.
func (f *Forwarder) SendTry(req *http.Request, ep *lb.Endpoint) (*http.Response, error) {
	return f.t.RoundTrip(req, ep)
}

// WriteResponse copies resp (from Send) to w and closes its body.
func (f *Forwarder) WriteResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, ep *lb.Endpoint, cluster string) {
	defer resp.Body.Close()

	declared := resp.Header["Trailer"]
	RemoveHopHeaders(resp.Header)
	dst := w.Header()
	for k, vv := range resp.Header {
		dst[k] = vv
	}
	if len(resp.Trailer) > 0 {
		if declaresAll(declared, resp.Trailer) {
			// The upstream's own Trailer header (a gRPC response's)
			// names them: passed on as it is, nothing to build.
			dst["Trailer"] = declared
		} else {
			names := make([]string, 0, len(resp.Trailer))
			for k := range resp.Trailer {
				names = append(names, k)
			}
			dst["Trailer"] = []string{strings.Join(names, ", ")}
		}
	}
	w.WriteHeader(resp.StatusCode)

	if err := copyBody(w, resp, r.Method); err != nil {
		if r.Context().Err() == nil {
			f.log.Debug("upstream response body failed; aborting the response", "cluster", cluster, "endpoint", ep.Addr, "error", err)
		}
		// The status line is out: abort so the client does not take a
		// truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
}

// declaresAll reports whether the Trailer header values declared name
// every key of trailer (case-insensitively, as header names compare).
func declaresAll(declared []string, trailer http.Header) bool {
	if len(declared) == 0 {
		return false
	}
	for k := range trailer {
		if !declares(declared, k) {
			return false
		}
	}
	return true
}

// declares reports whether the comma-separated names of declared
// include name.
func declares(declared []string, name string) bool {
	for _, v := range declared {
		for n := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return true
			}
		}
	}
	return false
}

// copyBody copies the response body, flushing after each read when the
// length is unknown, but the read that ended the body. It reports
// upstream read errors only; a client that stops reading ends the copy
// quietly.
func copyBody(w http.ResponseWriter, resp *http.Response, method string) error {
	if method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	flusher, _ := w.(http.Flusher)
	stream := flusher != nil && (resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			// Not after the last bytes (they came with io.EOF): the
			// handler returns at once and the end goes with them, one
			// write, no writer started for a flush (a gRPC unary
			// response whose trailers are already here).
			if stream && rerr == nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// idempotentNoBody reports whether r may be sent again without asking:
// GET, HEAD, OPTIONS or TRACE (or any method with an Idempotency-Key
// header), without a body.
func idempotentNoBody(r *http.Request) bool {
	if r.ContentLength != 0 { // -1: a body of unknown length
		return false
	}
	return resend.SafeMethod(r.Method) || resend.HasIdempotencyKey(r.Header)
}

// Fail answers a try that failed without a response: 502 for a connect
// failure or a reset, 504 for a deadline, nothing when the client is gone.
func (f *Forwarder) Fail(w http.ResponseWriter, r *http.Request, err error, ep *lb.Endpoint, cluster string) {
	if r.Context().Err() != nil {
		// The client went away; nobody reads an answer.
		f.log.Debug("client gone before the upstream answered", "cluster", cluster, "endpoint", ep.Addr, "error", err)
		return
	}
	var de *transport.DialError
	if errors.As(err, &de) {
		f.log.Info("upstream connect failed", "cluster", cluster, "endpoint", ep.Addr, "error", de.Err)
		Error(w, http.StatusBadGateway, "upstream connect error: %s: %v", de.Addr, de.Err)
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		Error(w, http.StatusGatewayTimeout, "upstream timeout: %s", ep.Addr)
		return
	}
	f.log.Info("upstream request failed", "cluster", cluster, "endpoint", ep.Addr, "error", err)
	Error(w, http.StatusBadGateway, "upstream request failed: %s: %v", ep.Addr, shortError(err))
}

// shortError drops the net/http and url prefixes that repeat the method and
// URL.
func shortError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Error answers a request the sidecar itself rejects: code and a one-line
// text body "weft: <message>".
func Error(w http.ResponseWriter, code int, format string, args ...any) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(code)
	fmt.Fprintf(w, "weft: "+format+"\n", args...)
}

// RemoveHopHeaders deletes the hop-by-hop headers from h, including those
// the Connection header names.
func RemoveHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// RemoveMeshHeaders deletes the headers only sidecars may set: the target
// port and the peer identity.
func RemoveMeshHeaders(h http.Header) {
	delete(h, headerTargetPort)
	delete(h, headerPeerIdentity)
}

// TargetPort returns the value of the target port header.
func TargetPort(h http.Header) (string, bool) {
	v := h[headerTargetPort]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}
