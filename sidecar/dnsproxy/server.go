package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/api/mesh"
)

// Defaults.
const (
	// DefaultTTL of the answers for mesh names: short, so an app that
	// caches still follows a service whose VIP changed within it.
	DefaultTTL = 30 * time.Second
	// DefaultUpstreamTimeout bounds one attempt at one upstream resolver.
	DefaultUpstreamTimeout = 2 * time.Second
	// MaxInFlight bounds the UDP queries answered at once.
	MaxInFlight = 128
	// tcpIdle closes a TCP client connection that sends nothing for this
	// long (RFC 7766 suggests seconds).
	tcpIdle = 10 * time.Second
	// maxUDPAnswer is the largest UDP answer without EDNS (RFC 1035).
	maxUDPAnswer = 512
)

// Forwarder sends a query that the table does not answer to a real
// resolver and returns its reply. network is "udp" or "tcp", as the query
// arrived.
type Forwarder interface {
	Forward(ctx context.Context, network string, query []byte) ([]byte, error)
}

// Upstreams forwards to resolvers in order (the nameservers of
// resolv.conf), each attempt bounded by Timeout.
type Upstreams struct {
	Addrs   []string
	Timeout time.Duration
	// Dialer defaults to a zero net.Dialer.
	Dialer *net.Dialer
}

var _ Forwarder = Upstreams{}

// Forward tries each upstream until one returns a reply that matches the
// query (same id and question).
func (u Upstreams) Forward(ctx context.Context, network string, query []byte) ([]byte, error) {
	if len(u.Addrs) == 0 {
		return nil, errors.New("dnsproxy: no upstream resolver")
	}
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = DefaultUpstreamTimeout
	}
	d := u.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	var errs []error
	for _, addr := range u.Addrs {
		r, err := exchange(ctx, d, network, addr, query, timeout)
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s %s: %w", network, addr, err))
	}
	return nil, fmt.Errorf("dnsproxy: forward: %w", errors.Join(errs...))
}

func exchange(ctx context.Context, d *net.Dialer, network, addr string, query []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if network == "tcp" {
		msg := make([]byte, 2+len(query))
		binary.BigEndian.PutUint16(msg, uint16(len(query))) //nolint:gosec // G115: queries come from a 64 KiB frame.
		copy(msg[2:], query)
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		r, err := readTCPMessage(c)
		if err != nil {
			return nil, err
		}
		if !matches(query, r) {
			return nil, errors.New("reply does not match the query")
		}
		return r, nil
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if matches(query, buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
		// Not ours (a late reply to an earlier query): keep waiting.
	}
}

// readTCPMessage reads one length-prefixed DNS message.
func readTCPMessage(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// matches reports whether reply answers query: a response with the same
// id and the same first question (names compared without case).
func matches(query, reply []byte) bool {
	var qp, rp dnsmessage.Parser
	qh, err := qp.Start(query)
	if err != nil {
		return false
	}
	rh, err := rp.Start(reply)
	if err != nil || !rh.Response || rh.ID != qh.ID {
		return false
	}
	qq, qerr := qp.Question()
	rq, rerr := rp.Question()
	if errors.Is(qerr, dnsmessage.ErrSectionDone) {
		return true // no question asked: the id is all there is
	}
	if qerr != nil || rerr != nil {
		return false
	}
	return qq.Type == rq.Type && qq.Class == rq.Class && strings.EqualFold(qq.Name.String(), rq.Name.String())
}

// Server answers DNS queries; see the package doc.
type Server struct {
	table   atomic.Pointer[Table]
	fwd     Forwarder
	log     *slog.Logger
	ttl     uint32
	queries *prometheus.CounterVec // mesh.MetricDNSQueries{result}
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithTTL sets the TTL of the answers for mesh names (DefaultTTL).
func WithTTL(d time.Duration) Option {
	return func(s *Server) { s.ttl = uint32(max(d, time.Second) / time.Second) } //nolint:gosec // G115: a TTL in seconds.
}

// WithRegisterer registers mesh.MetricDNSQueries{result} in reg (the
// counter is kept, unregistered, otherwise).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) {
		if err := reg.Register(s.queries); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					s.queries = c
				}
			}
		}
	}
}

// New returns a Server that forwards what it does not answer to fwd. Its
// table is empty (everything forwarded) until SetTable.
func New(fwd Forwarder, opts ...Option) *Server {
	s := &Server{fwd: fwd, log: slog.Default(), ttl: uint32(DefaultTTL / time.Second)}
	s.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: mesh.MetricDNSQueries,
		Help: "DNS queries to the sidecar's DNS proxy by result (answered, nodata, forwarded, servfail, formerr).",
	}, []string{"result"})
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetTable replaces the table; queries in flight keep the one they read.
func (s *Server) SetTable(t *Table) { s.table.Store(t) }

// Answer returns the reply to one query received over network ("udp" or
// "tcp"), or nil when there is none to send (a header that does not parse,
// or a message that is itself a reply).
func (s *Server) Answer(ctx context.Context, network string, query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		s.queries.WithLabelValues("formerr").Inc()
		return reply(h, nil, dnsmessage.RCodeFormatError, nil, network)
	}
	if h.OpCode == 0 && len(qs) == 1 && qs[0].Class == dnsmessage.ClassINET &&
		(qs[0].Type == dnsmessage.TypeA || qs[0].Type == dnsmessage.TypeAAAA) {
		if as, ok := s.table.Load().Lookup(qs[0].Name.String()); ok {
			var rrs []dnsmessage.Resource
			for _, a := range as {
				rh := dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: s.ttl}
				switch {
				case qs[0].Type == dnsmessage.TypeA && a.Is4():
					rrs = append(rrs, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a.As4()}})
				case qs[0].Type == dnsmessage.TypeAAAA && a.Is6():
					rrs = append(rrs, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
				}
			}
			s.log.Debug("dns answered", "name", qs[0].Name.String(), "type", qs[0].Type, "answers", len(rrs))
			if len(rrs) == 0 {
				s.queries.WithLabelValues("nodata").Inc()
			} else {
				s.queries.WithLabelValues("answered").Inc()
			}
			return reply(h, &qs[0], dnsmessage.RCodeSuccess, rrs, network)
		}
	}
	r, err := s.fwd.Forward(ctx, network, query)
	if err != nil {
		s.log.Debug("dns forward failed", "error", err)
		s.queries.WithLabelValues("servfail").Inc()
		var q *dnsmessage.Question
		if len(qs) == 1 {
			q = &qs[0]
		}
		return reply(h, q, dnsmessage.RCodeServerFailure, nil, network)
	}
	s.queries.WithLabelValues("forwarded").Inc()
	return r
}

// reply builds an answer to the query with header h: authoritative for
// mesh names (rrs or NODATA), or an error rcode. A UDP answer that does
// not fit 512 bytes is sent truncated (TC) so the client retries over TCP.
func reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, rrs []dnsmessage.Resource, network string) []byte {
	rh := dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RCode: rcode,
		Authoritative:    rcode == dnsmessage.RCodeSuccess,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	}
	m := dnsmessage.Message{Header: rh, Answers: rrs}
	if q != nil {
		m.Questions = []dnsmessage.Question{*q}
	}
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	if network == "udp" && len(b) > maxUDPAnswer {
		m.Header.Truncated, m.Answers = true, nil
		if b, err = m.Pack(); err != nil {
			return nil
		}
	}
	return b
}

// Listen opens the UDP socket and the TCP listener on addr (host:port).
func Listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsproxy: listen udp %s: %w", addr, err)
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("dnsproxy: listen tcp %s: %w", addr, err)
	}
	return pc, ln, nil
}

// Serve answers queries on pc (UDP) and ln (TCP) until ctx is done, then
// closes both, waits for the queries in flight and returns nil; it returns
// an error when either socket fails otherwise.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		_ = pc.Close()
		_ = ln.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = s.serveUDP(ctx, pc, &wg)
		cancel()
	})
	wg.Go(func() {
		errs[1] = s.serveTCP(ctx, ln, &wg)
		cancel()
	})
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) serveUDP(ctx context.Context, pc net.PacketConn, wg *sync.WaitGroup) error {
	sem := make(chan struct{}, MaxInFlight)
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dnsproxy: udp: %w", err)
		}
		q := append([]byte(nil), buf[:n]...)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if r := s.Answer(ctx, "udp", q); r != nil {
				if _, err := pc.WriteTo(r, from); err != nil && ctx.Err() == nil {
					s.log.Debug("dns udp reply not sent", "to", from.String(), "error", err)
				}
			}
		})
	}
}

func (s *Server) serveTCP(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dnsproxy: tcp: %w", err)
		}
		wg.Go(func() { s.serveConn(ctx, c) })
	}
}

// serveConn answers the length-prefixed queries of one TCP client in
// order until it closes, idles or ctx ends.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer func() { _ = c.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	for {
		if err := c.SetReadDeadline(time.Now().Add(tcpIdle)); err != nil {
			return
		}
		q, err := readTCPMessage(c)
		if err != nil {
			return
		}
		r := s.Answer(ctx, "tcp", q)
		if r == nil {
			return
		}
		msg := make([]byte, 2+len(r))
		binary.BigEndian.PutUint16(msg, uint16(len(r))) //nolint:gosec // G115: a packed message fits 64 KiB.
		copy(msg[2:], r)
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}
