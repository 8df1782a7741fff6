package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/h1server"
	"github.com/weftmesh/weft/sidecar/h2server"
	"github.com/weftmesh/weft/sidecar/internal/rawtcp"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/transport"
)

// bindRetry is how often a listener that failed to bind is tried again.
const bindRetry = time.Second

// listenerManager binds the listeners the current table names, rebinds one
// whose address changed (the new socket first, then the old one drains),
// and drains removed ones. Its run goroutine alone touches servers.
type listenerManager struct {
	log     *slog.Logger
	drain   time.Duration
	tables  *atomic.Pointer[router.Table]
	servers map[string]serverSpec
	// netSocketIO: accepted connections stay the net package's, not
	// *rawtcp.Conn (Config.NetSocketIO). Set before run.
	netSocketIO bool

	wake chan struct{}
	// bound is true when a table was applied and every listener it names
	// is bound.
	bound atomic.Bool
	// started is closed once bound first became true and the server of
	// every listener bound by then has asked its listener for a
	// connection (and the inbound's TLS-sniffing listener its socket):
	// the servers' goroutines have started, and so grown their stacks,
	// before what waits for started (the sidecar's trim of its start-up
	// pages) runs.
	started chan struct{}
	// accepting are the first-Accept signals of the listeners bound
	// before started was scheduled; startPending is true once it was.
	accepting    []<-chan struct{}
	startPending bool
	// done is closed when run returned: every listener drained.
	done chan struct{}

	running map[string]*served
	wg      sync.WaitGroup
}

type served struct {
	addr string
	srv  server
}

// server is a listener's server: an *h1server.Server (outbound, inbound),
// or net/http's (the egress gateway's inbound).
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

var (
	_ server = (*http.Server)(nil)
	_ server = (*h1server.Server)(nil)
)

// httpConfig is the net/http configuration of srv (h1server takes its
// handler, ConnContext and timeouts from one), nil for another kind.
func httpConfig(srv server) *http.Server {
	switch s := srv.(type) {
	case *http.Server:
		return s
	case *h1server.Server:
		return s.Config
	}
	return nil
}

// serverSpec makes the server of one listener; wrap (may be nil) wraps its
// socket for that server (the inbound's TLS sniffing listener, which
// serves the connections it classified with the server's ServeConn).
type serverSpec struct {
	newServer func() server
	wrap      func(net.Listener, server) net.Listener
	// bind (may be nil) maps the LDS address to the one bound (capture:
	// the outbound binds every address, REDIRECT sends to 127.0.0.1).
	bind func(string) string
}

func newListenerManager(log *slog.Logger, drain time.Duration, tables *atomic.Pointer[router.Table], servers map[string]serverSpec) *listenerManager {
	return &listenerManager{
		log:     log.With("component", "listeners"),
		drain:   drain,
		tables:  tables,
		servers: servers,
		wake:    make(chan struct{}, 1),
		started: make(chan struct{}),
		done:    make(chan struct{}),
		running: map[string]*served{},
	}
}

// notify asks run to look at the current table. It never blocks.
func (m *listenerManager) notify() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *listenerManager) ready() bool { return m.bound.Load() }

// run applies tables until ctx ends, then drains every listener.
func (m *listenerManager) run(ctx context.Context) error {
	defer close(m.done)
	retry := time.NewTimer(bindRetry)
	retry.Stop()
	for {
		if !m.apply(ctx, m.tables.Load()) {
			retry.Reset(bindRetry)
		}
		select {
		case <-ctx.Done():
			m.bound.Store(false)
			for name, s := range m.running {
				m.stop(name, s) //nolint:contextcheck // draining outlives the cancelled run context, bounded by its own timeout
			}
			m.wg.Wait()
			return nil
		case <-m.wake:
		case <-retry.C:
		}
	}
}

// apply reconciles the running listeners with t. It reports false when a
// listener could not be bound (run retries).
func (m *listenerManager) apply(ctx context.Context, t *router.Table) bool {
	if t == nil {
		return true
	}
	want := map[string]string{}
	if t.Outbound != nil {
		want[mesh.ListenerOutbound] = t.Outbound.Address
	}
	if t.Inbound != nil {
		want[mesh.ListenerInbound] = t.Inbound.Address
	}
	ok := true
	for name, addr := range want {
		cur := m.running[name]
		if cur != nil && cur.addr == addr {
			continue
		}
		spec, found := m.servers[name]
		if !found {
			continue
		}
		bindAddr := addr
		if spec.bind != nil {
			bindAddr = spec.bind(addr)
		}
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", bindAddr)
		if err != nil {
			m.log.Warn("cannot bind listener; retrying", "listener", name, "address", addr, "error", err)
			ok = false
			continue
		}
		if !m.netSocketIO {
			// Raw socket reads and writes (rawtcp): no sysmon wake per request.
			ln = rawtcp.Listener{Listener: ln}
		}
		ln = m.watchAccept(ln)
		srv := spec.newServer()
		if spec.wrap != nil {
			ln = m.watchAccept(spec.wrap(ln, srv))
		}
		m.wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("listener stopped", "listener", name, "address", addr, "error", err)
			}
		})
		m.running[name] = &served{addr: addr, srv: srv}
		if cur != nil {
			m.log.Info("listener moved", "listener", name, "from", cur.addr, "to", addr)
			m.stop(name, cur) //nolint:contextcheck // draining outlives the cancelled run context, bounded by its own timeout
		} else {
			m.log.Info("listener bound", "listener", name, "address", addr)
		}
	}
	for name, s := range m.running {
		if _, keep := want[name]; !keep {
			m.log.Info("listener removed", "listener", name, "address", s.addr)
			delete(m.running, name)
			m.stop(name, s) //nolint:contextcheck // draining outlives the cancelled run context, bounded by its own timeout
		}
	}
	m.bound.Store(ok)
	if ok && !m.startPending {
		m.startPending = true
		waits := m.accepting
		m.accepting = nil
		m.wg.Go(func() {
			for _, w := range waits {
				select {
				case <-w:
				case <-ctx.Done():
					return
				}
			}
			close(m.started)
		})
	}
	return ok
}

// watchAccept returns ln reporting its first Accept to started, until
// started was scheduled (later listeners are not watched).
func (m *listenerManager) watchAccept(ln net.Listener) net.Listener {
	if m.startPending {
		return ln
	}
	a := &firstAccept{Listener: ln, called: make(chan struct{})}
	m.accepting = append(m.accepting, a.called)
	return a
}

// firstAccept closes called when its Accept is first called.
type firstAccept struct {
	net.Listener
	once   sync.Once
	called chan struct{}
}

func (l *firstAccept) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.called) })
	return l.Listener.Accept()
}

// stop drains s in the background: it stops accepting at once and waits
// up to the drain timeout for in-flight requests, then closes the rest.
func (m *listenerManager) stop(name string, s *served) {
	m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.drain)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			m.log.Warn("listener drain timed out; closing connections", "listener", name, "address", s.addr, "error", err)
			_ = s.srv.Close()
		}
	})
}

// DefaultHTTP2WriteTimeout bounds each socket write to an HTTP/2
// connection (h2server's and h2client's own default).
const DefaultHTTP2WriteTimeout = h2server.DefaultWriteTimeout

// Values of Config.HTTP2Server.
const (
	HTTP2ServerWeft    = "weft"
	HTTP2ServerNetHTTP = "net/http"
)

// Values of Config.HTTP2Client.
const (
	HTTP2ClientWeft    = transport.HTTP2ClientWeft
	HTTP2ClientNetHTTP = transport.HTTP2ClientNetHTTP
)

// withHTTP2 has srv serve HTTP/2 with sidecar/h2server, whose writes
// cfg.HTTP2WriteTimeout bounds, unless cfg asks for net/http's server.
func withHTTP2(cfg Config, srv *h1server.Server) *h1server.Server {
	if cfg.HTTP2Server != HTTP2ServerNetHTTP {
		h2 := h2server.FromConfig(srv.Config)
		if cfg.HTTP2WriteTimeout != 0 {
			h2.WriteTimeout = cfg.HTTP2WriteTimeout
		}
		srv.HTTP2 = h2
	}
	return srv
}
