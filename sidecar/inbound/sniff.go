package inbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/sidecar/identity"
)

// handshakeTimeout bounds the first byte and the TLS handshake of an
// inbound connection.
const handshakeTimeout = 10 * time.Second

// Listener is the inbound listener's socket: Accept hands the HTTP server
// connections already classified by their first byte. A TLS ClientHello
// (0x16) is completed here with the server mTLS config (client certificate
// required, trust-domain members only): a refused handshake is logged with
// the peer address and the reason (expired, unknown authority, wrong trust
// domain, ...) and closed, so it never reaches the app. Anything else is a
// plaintext connection, handed on as it is; whether plaintext is allowed
// is decided per request, once the target port is known (Handler).
//
// With a serve function (NewListener's serve), a classified connection is
// served on the goroutine that classified it and Accept hands out none:
// one goroutine and one stack per connection, not two (the server's own
// accept loop would start a second one, and both grow their stacks).
//
// Goroutines: one accept loop (started by NewListener, ended by Close) and
// one goroutine per connection until it is classified, or, with serve,
// until serve returns (the server's Shutdown and Close end it).
type Listener struct {
	inner net.Listener
	tls   *tls.Config // nil: no identity, TLS is refused
	log   *slog.Logger
	serve func(net.Conn) bool

	conns    chan net.Conn
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	acceptEr error
}

var _ net.Listener = (*Listener)(nil)

// NewListener wraps ln. tlsConfig is identity.ServerTLSConfig (nil when the
// sidecar runs without an identity: TLS connections are then refused).
// serve, when not nil, serves each classified connection on the goroutine
// that classified it (h1server.Server.ServeConn: it closes the connection,
// and reports false when the server no longer serves); nil hands them to
// Accept.
func NewListener(ln net.Listener, tlsConfig *tls.Config, log *slog.Logger, serve func(net.Conn) bool) *Listener {
	l := &Listener{inner: ln, tls: tlsConfig, log: log.With("listener", "inbound"), serve: serve, conns: make(chan net.Conn), done: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			l.mu.Lock()
			l.acceptEr = err
			l.mu.Unlock()
			l.Close()
			return
		}
		delay = 0
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.classify(c)
		}()
	}
}

// classify peeks at the first byte of c and serves it or hands it to
// Accept.
func (l *Listener) classify(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	var out net.Conn = pc
	if first[0] == 0x16 {
		if l.tls == nil {
			l.log.Warn("refused TLS connection: this sidecar runs without an identity", "peer", c.RemoteAddr().String())
			c.Close()
			return
		}
		tc := tls.Server(pc, l.tls)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.log.Warn("refused mTLS connection", "peer", c.RemoteAddr().String(), "reason", err.Error())
			c.Close()
			return
		}
		out = tc
	}
	_ = c.SetReadDeadline(time.Time{})
	if l.serve != nil {
		select {
		case <-l.done:
			c.Close()
		default:
			l.serve(out)
		}
		return
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.acceptEr != nil && !errors.Is(l.acceptEr, net.ErrClosed) {
			return nil, l.acceptEr
		}
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it stops accepting; connections being
// classified are closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// peekedConn reads the peeked byte first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn returns the wrapped connection (capture.FromConn unwraps it).
func (c *peekedConn) NetConn() net.Conn { return c.Conn }

type peerKey struct{}

// Peer is what the inbound knows about a connection's peer.
type Peer struct {
	// ID is the verified SPIFFE ID; zero on a plaintext connection.
	ID spiffeid.ID
	// Header is ID as the x-weft-peer-identity value (one allocation per
	// connection, not per request).
	Header []string
	// Addr is the remote address.
	Addr string
}

// ConnContext records the connection's peer in its context (the server's
// ConnContext hook): the verified identity of an mTLS connection.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p := &Peer{Addr: c.RemoteAddr().String()}
	if tc, ok := c.(*tls.Conn); ok {
		if id, err := identity.PeerID(tc.ConnectionState()); err == nil {
			p.ID, p.Header = id, []string{id.String()}
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFromContext returns the peer ConnContext recorded, or nil.
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}
