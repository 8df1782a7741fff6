package h2client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/sidecar/internal/h2conn"
)

// Defaults of the Client's options.
const (
	DefaultStreamWindow = 1 << 20
	DefaultConnWindow   = 4 << 20
	DefaultPingTimeout  = 15 * time.Second
	// DefaultWriteTimeout bounds each write to a connection (as
	// sidecar/h2server's DefaultWriteTimeout).
	DefaultWriteTimeout = 30 * time.Second
	// initialMaxStreams is the streams a connection takes before the
	// peer's SETTINGS say how many it allows (net/http's).
	initialMaxStreams = 100
	// maxStreamsCap bounds a peer's SETTINGS_MAX_CONCURRENT_STREAMS
	// (none, or a very large one).
	maxStreamsCap = 1000
	// maxUnprocessedRetries: a request without a body the peer did not
	// process (GOAWAY, REFUSED_STREAM) goes again on another connection
	// up to that many times.
	maxUnprocessedRetries = 2
)

// DialFunc dials addr (a host:port from the request URL) and returns a
// connection that speaks HTTP/2 (TLS after its handshake with ALPN h2, or
// plaintext for h2c).
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// ErrNotProcessed says the peer did not process the request (it came
// above the last stream id of the peer's GOAWAY, or the peer refused the
// stream with REFUSED_STREAM): it may be sent again, on another
// connection, whatever its method (RFC 9113 8.7).
var ErrNotProcessed = errors.New("h2client: request not processed by the peer")

// ErrClosed is returned by RoundTrip once Close was called.
var ErrClosed = errors.New("h2client: client closed")

// Option configures a Client.
type Option func(*Client)

// WithMaxHeaderBytes bounds a response's decoded header list, advertised
// as SETTINGS_MAX_HEADER_LIST_SIZE (default http.DefaultMaxHeaderBytes).
func WithMaxHeaderBytes(n int) Option {
	return func(c *Client) { c.maxHeaderBytes = uint32(max(1, min(n, 1<<30))) } //nolint:gosec // bounded
}

// WithWindows sets the receive windows of a stream and of a connection
// (defaults DefaultStreamWindow, DefaultConnWindow).
func WithWindows(stream, conn int32) Option {
	return func(c *Client) {
		if stream > 0 {
			c.streamWindow = stream
		}
		if conn > 0 {
			c.connWindow = conn
		}
	}
}

// WithPing sends a PING after send without a frame read from the
// connection, and closes it when the ACK does not come within timeout
// (0: DefaultPingTimeout). send 0: no PINGs (the default).
func WithPing(send, timeout time.Duration) Option {
	return func(c *Client) {
		c.sendPing = send
		if timeout > 0 {
			c.pingTimeout = timeout
		}
	}
}

// WithWriteTimeout bounds each write to a connection: a write the peer
// does not take within d (it reads nothing, or too slowly) fails the
// connection and every stream on it. It bounds a pending write, not a
// stream's life: a stream that sends nothing is not bounded. Default
// DefaultWriteTimeout; negative: no bound.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d != 0 {
			c.writeTimeout = d
		}
	}
}

// WithIdleTimeout closes a connection that carried no stream for d (0:
// never, the default).
func WithIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idleTimeout = d } }

// Client is an HTTP/2 client: one connection per peer address, a second
// one only while every stream the first allows is in use. It is safe for
// concurrent use; Close ends it.
type Client struct {
	dial           DialFunc
	maxHeaderBytes uint32
	streamWindow   int32
	connWindow     int32
	sendPing       time.Duration
	pingTimeout    time.Duration
	idleTimeout    time.Duration
	writeTimeout   time.Duration

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool
	// wg counts the goroutines of the connections: read loops,
	// keep-alive timers and request body writers.
	wg sync.WaitGroup
}

// peer is the connections to one address.
type peer struct {
	conns []*conn
	// dial is the dial in progress: one at a time per peer, the others
	// wait for it.
	dial *dialCall
}

type dialCall struct {
	done chan struct{}
	err  error
}

// New returns a Client that dials with dial.
func New(dial DialFunc, opts ...Option) *Client {
	c := &Client{
		dial:           dial,
		maxHeaderBytes: http.DefaultMaxHeaderBytes,
		streamWindow:   DefaultStreamWindow,
		connWindow:     DefaultConnWindow,
		pingTimeout:    DefaultPingTimeout,
		writeTimeout:   DefaultWriteTimeout,
		peers:          map[string]*peer{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// RoundTrip sends req to req.URL.Host over HTTP/2 and returns the
// response once its head came; its body streams the DATA that follows.
// req.URL.Scheme is the :scheme sent ("http" or "https"); the dial
// function decides what the connection is. The request body is sent as
// it is read, on a goroutine of the stream's own, and closed once sent
// or when the stream ends; cancelling the request's context resets the
// stream (CANCEL) and fails the body. An error wrapping ErrNotProcessed
// means the peer never processed the request.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	noBody := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		cc, err := c.getConn(ctx, req.URL.Host)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := cc.roundTrip(req)
		if err != nil && noBody && attempt < maxUnprocessedRetries && errors.Is(err, ErrNotProcessed) && ctx.Err() == nil {
			continue
		}
		return resp, err
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// getConn returns a connection to addr with a stream reserved for the
// caller: an open one with room, or a new one (one dial per peer at a
// time; the others wait for it).
func (c *Client) getConn(ctx context.Context, addr string) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		p := c.peers[addr]
		if p == nil {
			p = &peer{}
			c.peers[addr] = p
		}
		for _, cc := range p.conns {
			if cc.reserve() {
				c.mu.Unlock()
				return cc, nil
			}
		}
		if d := p.dial; d != nil {
			c.mu.Unlock()
			select {
			case <-d.done:
				if d.err != nil && !isContextErr(d.err) {
					return nil, d.err
				}
				continue // the dialer's request went away: dial again
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		d := &dialCall{done: make(chan struct{})}
		p.dial = d
		c.mu.Unlock()
		cc, err := c.dialConn(ctx, addr)
		c.mu.Lock()
		p.dial = nil
		if err == nil && c.closed {
			err = ErrClosed
			_ = cc.nc.Close()
		}
		if err == nil {
			p.conns = append(p.conns, cc)
			cc.reserve()
			c.startConn(cc)
		}
		d.err = err
		close(d.done)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return cc, nil
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// dialConn dials addr and queues the client preface: the connection's
// SETTINGS and WINDOW_UPDATE go out with its first request's HEADERS.
func (c *Client) dialConn(ctx context.Context, addr string) (*conn, error) {
	nc, err := c.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	cc := &conn{
		cl:          c,
		addr:        addr,
		nc:          nc,
		br:          bufio.NewReaderSize(nc, readBufSize),
		streams:     h2conn.Streams[*stream]{},
		nextID:      1,
		maxStreams:  initialMaxStreams,
		peerMaxList: -1,
	}
	cc.cond.L = &cc.mu
	cc.Init(nc, cc.br, &cc.mu, &cc.cond, cc, h2conn.Config{
		Name:              "h2client",
		WriteTimeout:      c.writeTimeout,
		MaxControlBytes:   maxControlPending,
		MaxHeaderListSize: c.maxHeaderBytes,
		StreamWindow:      c.streamWindow,
		ConnWindow:        c.connWindow,
		ErrStreamReset:    errStreamReset,
	})
	cc.Inflow = int64(c.connWindow)
	cc.QueueLocked(http2.ClientPreface)
	_ = cc.Fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.streamWindow)}, //nolint:gosec // positive
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.maxHeaderBytes},
	)
	if w := int64(c.connWindow); w > initialWindow {
		_ = cc.Fr.WriteWindowUpdate(0, uint32(w-initialWindow)) //nolint:gosec // bounded by int32
	}
	return cc, nil
}

// startConn starts cc's read loop and keep-alive timer (c.mu held; c
// not closed).
func (c *Client) startConn(cc *conn) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		cc.readLoop()
		c.removeConn(cc)
	}()
	cc.startTimer()
}

// removeConn takes cc out of its peer's pool once it ended.
func (c *Client) removeConn(cc *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[cc.addr]
	if p == nil {
		return
	}
	for i, x := range p.conns {
		if x == cc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if len(p.conns) == 0 && p.dial == nil {
		delete(c.peers, cc.addr)
	}
}

// goWithConn runs f on a goroutine the Client owns (Close waits for
// it); false when the Client is closed.
func (c *Client) goWithConn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Go(f)
	return true
}

// CloseIdleConnections closes the connections that carry no stream.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	var idle []*conn
	for _, p := range c.peers {
		for _, cc := range p.conns {
			if cc.idle() {
				idle = append(idle, cc)
			}
		}
	}
	c.mu.Unlock()
	for _, cc := range idle {
		cc.closeIfIdle()
	}
}

// Close closes every connection (their streams fail) and waits for the
// goroutines of the connections to end: each read loop, keep-alive
// timer, and request body writer (its body is closed, which ends a
// pending Read).
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	var all []*conn
	for _, p := range c.peers {
		all = append(all, p.conns...)
	}
	c.mu.Unlock()
	for _, cc := range all {
		cc.fail(fmt.Errorf("h2client: %w", ErrClosed))
	}
	c.wg.Wait()
	return nil
}

// readBufSize is the connection's read buffer.
const readBufSize = 16 << 10
