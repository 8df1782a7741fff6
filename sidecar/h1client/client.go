package h1client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/sidecar/internal/resend"
)

// DialFunc opens a connection to addr (host:port). For TLS it returns the
// connection with the handshake done. Its error is returned by RoundTrip
// as it is.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// Buffer sizes and limits.
const (
	// bufSize is the size of each connection's read and write buffers
	// (net/http's too): a request with a small body goes out in one write.
	bufSize = 4 << 10
	// inlineBody is the largest request body of known length written on
	// the caller's goroutine before the response is read; longer ones, and
	// those of unknown length, are streamed by a goroutine of the request.
	inlineBody = 64 << 10
	// checkIdleAfter is how long a connection may sit idle before it is
	// peeked at for a close by the server before being used again.
	checkIdleAfter = time.Second
	// max1xx bounds the informational responses skipped before the final
	// one (net/http's limit).
	max1xx = 5
	// writeWait is how long the end of a response waits for its request
	// body's writer before the connection is given up (net/http's 50 ms).
	writeWait = 50 * time.Millisecond
)

// Defaults of the options.
const (
	DefaultMaxIdlePerHost         = 256
	DefaultIdleTimeout            = 90 * time.Second
	DefaultMaxResponseHeaderBytes = 1 << 20
)

// Option configures a Client.
type Option func(*Client)

// WithMaxIdlePerHost bounds the idle connections kept per upstream address
// (default DefaultMaxIdlePerHost; 0 keeps none).
func WithMaxIdlePerHost(n int) Option { return func(c *Client) { c.maxIdle = n } }

// WithIdleTimeout sets how long an idle connection is kept (default
// DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idleTimeout = d } }

// WithSpareIdleTimeout sets how long an idle connection other than the
// most recently used one of its address is kept (0, the default: as long
// as any, the idle timeout). After a burst the pool shrinks to the
// connections the load that follows uses (LIFO keeps those warm), as
// HAProxy's pool-purge-delay does, instead of keeping every connection
// the burst opened, and its TLS record buffers, for the whole idle
// timeout; one connection stays for the idle timeout, so occasional
// traffic does not pay a new connection each time.
func WithSpareIdleTimeout(d time.Duration) Option { return func(c *Client) { c.spareTimeout = d } }

// WithMaxResponseHeaderBytes bounds a response head, and the trailer
// section of a chunked body (default DefaultMaxResponseHeaderBytes).
func WithMaxResponseHeaderBytes(n int) Option { return func(c *Client) { c.maxHeader = n } }

// WithHeaderRecycling makes a response's Header map the Client's again
// once the caller closed the response's body: it is cleared and filled by
// a later response, and the closed response's Header is set to nil. The
// caller must not use the map after Close (values it took from it, the
// []string slices, stay as they were: they are not reused). The sidecar's
// proxy copies the upstream's header values into its own response and
// closes the body when it is done; the map was two allocations, ~380
// bytes, per request and hop. A response without a body (http.NoBody)
// keeps its map. With it, a caller may also give the whole response back
// once it is done with it (Recycle).
func WithHeaderRecycling() Option { return func(c *Client) { c.recycleHeaders = true } }

// Recycle gives resp back to the Client that returned it, for a later
// response, when that Client recycles (WithHeaderRecycling): the Response
// and its body are one allocation (~280 bytes) per request. The caller
// must have read and closed resp.Body on its own goroutine (no Read in
// flight, none to come), and must not use resp, its Body or its Trailer
// map afterwards; the value slices it took from resp stay as they were. A
// response of another origin, without a body (http.NoBody), or whose
// body is not closed, is left to the garbage collector.
func Recycle(resp *http.Response) {
	b, ok := resp.Body.(*body)
	if !ok || b.responses == nil || &b.rb.resp != resp || !b.mu.TryLock() {
		return
	}
	done := b.closed && b.pc == nil && b.state.Load() == 1
	b.mu.Unlock()
	if !done {
		return
	}
	// b is inside rb: take what is needed before clearing it.
	rb, responses := b.rb, b.responses
	*rb = respBody{}
	responses.Put(rb)
}

// newRespBody returns a response with its body, recycled when there is
// one.
func (c *Client) newRespBody() *respBody {
	if c.recycleHeaders {
		if rb, ok := c.responses.Get().(*respBody); ok {
			return rb
		}
	}
	return new(respBody)
}

// newHeader returns a header map for a response with about n fields: a
// recycled one when there is one.
func (c *Client) newHeader(n int) http.Header {
	if c.recycleHeaders {
		if h, ok := c.headers.Get().(http.Header); ok {
			return h
		}
	}
	return make(http.Header, n)
}

// Client is a pool of HTTP/1.1 keep-alive connections per upstream
// address. It is safe for concurrent use.
type Client struct {
	dial        DialFunc
	maxIdle     int
	idleTimeout time.Duration
	// spareTimeout: WithSpareIdleTimeout (0: idleTimeout).
	spareTimeout time.Duration
	maxHeader    int
	// checkIdle is checkIdleAfter (tests shorten it).
	checkIdle time.Duration
	// watchDelay: WithCancelWatchDelay.
	watchDelay time.Duration

	hosts   sync.Map  // addr -> *hostPool
	readers sync.Pool // *bufio.Reader
	writers sync.Pool // *bufio.Writer
	bodies  sync.Pool // *[]byte of inlineBody bytes: copy buffer of larger bodies
	// recycleHeaders: WithHeaderRecycling; headers holds the cleared maps,
	// responses the responses given back (Recycle).
	recycleHeaders bool
	headers        sync.Pool // http.Header
	responses      sync.Pool // *respBody
}

// New returns a Client that dials with dial.
func New(dial DialFunc, opts ...Option) *Client {
	c := &Client{
		dial:        dial,
		maxIdle:     DefaultMaxIdlePerHost,
		idleTimeout: DefaultIdleTimeout,
		maxHeader:   DefaultMaxResponseHeaderBytes,
		checkIdle:   checkIdleAfter,
		watchDelay:  DefaultCancelWatchDelay,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// RoundTrip sends req to req.URL.Host and returns the response, whose body
// the caller must read to its end or close. req.URL carries the request
// target (path and query); req.Host, or else req.URL.Host, is sent as the
// Host header. As with net/http, RoundTrip closes req.Body, and the error,
// when req's context ended, is its context.Cause.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, context.Cause(ctx)
		}
		pc, err := c.getConn(ctx, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		var se *staleError
		if try > 0 || !errors.As(err, &se) {
			return nil, err
		}
		// The server had closed the reused connection: once more on a
		// new one, when the body can be sent again.
		next, ok := rewind(req)
		if !ok {
			return nil, se.err
		}
		req = next
	}
}

// staleError is the failure of a request on a reused connection before
// any byte of a response: the server probably closed it while it was idle.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// isConnClosed reports whether err says the peer closed or reset the
// connection (not a timeout or a local failure): resend.PeerClosed, or
// ECONNABORTED, as net/http counts it.
func isConnClosed(err error) bool {
	return resend.PeerClosed(err) || errors.Is(err, syscall.ECONNABORTED)
}

// rewind returns req ready to be sent again, as net/http decides it: only
// an idempotent request (GET, HEAD, OPTIONS, TRACE, or one carrying an
// Idempotency-Key or X-Idempotency-Key header), since the server may have
// acted on the first copy before it closed; as it is when it has no body,
// with a fresh body from GetBody otherwise.
func rewind(req *http.Request) (*http.Request, bool) {
	if !idempotent(req) {
		return nil, false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	next := new(http.Request)
	*next = *req
	next.Body = b
	return next, true
}

// idempotent is net/http's rule: a safe method (a request's "" is GET),
// or an Idempotency-Key or X-Idempotency-Key header.
func idempotent(req *http.Request) bool {
	return req.Method == "" || resend.SafeMethod(req.Method) ||
		resend.HasIdempotencyKey(req.Header) || len(req.Header["X-Idempotency-Key"]) > 0
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// CloseIdleConnections closes the idle connections of every upstream
// address and stops their idle timers. Connections in use are not
// affected; they are pooled again when their response ends.
func (c *Client) CloseIdleConnections() {
	c.hosts.Range(func(_, v any) bool {
		v.(*hostPool).closeIdle()
		return true
	})
}

// hostPool holds the idle connections to one address, most recently used
// last.
type hostPool struct {
	c     *Client
	mu    sync.Mutex
	idle  []*conn
	timer *time.Timer // closes connections idle for longer than their limit
	armed bool
	due   time.Time // when the armed timer fires
}

// limitLocked is how long idle[i] may stay idle: the idle timeout for
// the most recently used connection, the spare timeout (when shorter)
// for the others.
func (hp *hostPool) limitLocked(i int) time.Duration {
	if i < len(hp.idle)-1 && hp.c.spareTimeout > 0 && hp.c.spareTimeout < hp.c.idleTimeout {
		return hp.c.spareTimeout
	}
	return hp.c.idleTimeout
}

// armLocked makes the timer fire when the first idle connection reaches
// its limit: the oldest one's (idle is oldest first, and the most recently
// used one's limit is the longest), unless the timer is due earlier.
func (hp *hostPool) armLocked(now time.Time) {
	if len(hp.idle) == 0 {
		return
	}
	due := hp.idle[0].idleAt.Add(hp.limitLocked(0))
	if hp.armed && !due.Before(hp.due) {
		return
	}
	hp.armed, hp.due = true, due
	if hp.timer == nil {
		hp.timer = time.AfterFunc(due.Sub(now), hp.expire)
	} else {
		hp.timer.Reset(due.Sub(now))
	}
}

func (c *Client) host(addr string) *hostPool {
	if v, ok := c.hosts.Load(addr); ok {
		return v.(*hostPool)
	}
	v, _ := c.hosts.LoadOrStore(addr, &hostPool{c: c})
	return v.(*hostPool)
}

// getConn returns an idle connection to addr, or a new one.
func (c *Client) getConn(ctx context.Context, addr string) (*conn, error) {
	hp := c.host(addr)
	for {
		pc, idle := hp.take()
		if pc == nil {
			break
		}
		if idle > c.checkIdle && peerClosed(pc.nc) {
			pc.close()
			continue
		}
		return pc, nil
	}
	nc, err := c.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.newConn(hp, nc), nil
}

// take pops the most recently used idle connection that has not timed
// out, and how long it was idle.
func (hp *hostPool) take() (*conn, time.Duration) {
	now := time.Now()
	var expired []*conn
	hp.mu.Lock()
	var pc *conn
	var idle time.Duration
	for n := len(hp.idle); n > 0; n-- {
		p := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		if d := now.Sub(p.idleAt); d < hp.c.idleTimeout {
			pc, idle = p, d
			break
		}
		expired = append(expired, p)
	}
	hp.mu.Unlock()
	for _, p := range expired {
		p.close()
	}
	return pc, idle
}

// put pools pc, or closes it when the pool is full.
func (hp *hostPool) put(pc *conn) {
	pc.idleAt = time.Now()
	hp.mu.Lock()
	if len(hp.idle) >= hp.c.maxIdle {
		hp.mu.Unlock()
		pc.close()
		return
	}
	hp.idle = append(hp.idle, pc)
	hp.armLocked(pc.idleAt)
	hp.mu.Unlock()
}

// expire closes the connections idle for longer than their limit (the
// oldest are first) and rearms the timer for the next one.
func (hp *hostPool) expire() {
	now := time.Now()
	hp.mu.Lock()
	n := 0
	for n < len(hp.idle) && now.Sub(hp.idle[n].idleAt) >= hp.limitLocked(n) {
		n++
	}
	expired := make([]*conn, n)
	copy(expired, hp.idle[:n])
	rest := copy(hp.idle, hp.idle[n:])
	clear(hp.idle[rest:])
	hp.idle = hp.idle[:rest]
	hp.armed = false
	hp.armLocked(now)
	hp.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
}

func (hp *hostPool) closeIdle() {
	hp.mu.Lock()
	idle := hp.idle
	hp.idle = nil
	if hp.timer != nil {
		hp.timer.Stop()
	}
	hp.armed = false
	hp.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}
