package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/api/mesh"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"

	"github.com/weftmesh/weft/sidecar/internal/cpconn"
)

// Node describes the sidecar to the control plane.
type Node struct {
	Workload       string
	Namespace      string
	ServiceAccount string
	// IP is the workload's address.
	IP string
}

// Node metadata keys (docs/architecture.md, "Node").
const (
	metaNamespace      = "namespace"
	metaWorkload       = "workload"
	metaServiceAccount = "service_account"
	metaIP             = "ip"
)

func (n Node) proto() (*core.Node, error) {
	if n.Workload == "" || n.Namespace == "" {
		return nil, errors.New("xdsclient: node workload and namespace are required")
	}
	md, err := structpb.NewStruct(map[string]any{
		metaNamespace:      n.Namespace,
		metaWorkload:       n.Workload,
		metaServiceAccount: n.ServiceAccount,
		metaIP:             n.IP,
	})
	if err != nil {
		return nil, fmt.Errorf("xdsclient: node metadata: %w", err)
	}
	return &core.Node{
		Id:            mesh.NodeID(n.Workload, n.Namespace),
		Metadata:      md,
		UserAgentName: "weft-sidecar",
	}, nil
}

// Option configures a Client.
type Option func(*options)

type options struct {
	logger          *slog.Logger
	httpClient      connect.HTTPClient
	baseURL         string
	backoffBase     time.Duration
	backoffMax      time.Duration
	nackBackoffBase time.Duration
	warmingTimeout  time.Duration
	validate        func(*Snapshot) error
	onUpdate        func(*Snapshot)
	secrets         SecretSink
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient sets the HTTP/2 client the ADS stream runs on and the URL
// of the server (cpconn.BaseURL: https for the sidecar's TLS channel, whose
// client also adds the credential). Default: cleartext HTTP/2 to the server
// address (cpconn.NewTransport(nil)), no credential.
func WithHTTPClient(hc connect.HTTPClient, baseURL string) Option {
	return func(o *options) { o.httpClient, o.baseURL = hc, baseURL }
}

// WithBackoff sets the reconnect backoff: jittered, doubling from base to max
// (default 200 ms to 3 s).
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax = base, max }
}

// WithWarmingTimeout bounds how long an accepted configuration may wait for
// the route configurations and endpoint assignments it references before it
// is published anyway (default 15 s, Envoy's initial fetch timeout). Until
// then the previous configuration stays in force, like Envoy's warming. A
// route configuration that never arrives routes nothing; an assignment that
// never arrives has no endpoints.
func WithWarmingTimeout(d time.Duration) Option {
	return func(o *options) { o.warmingTimeout = d }
}

// WithValidator adds a check that every candidate snapshot must pass before
// it is accepted, on top of the client's own; an error NACKs the response
// with that error as its reason. The data path uses it to reject what it
// cannot serve. It runs on the client's goroutine, must not block and must
// not keep the snapshot as current (it may be rejected still).
func WithValidator(f func(*Snapshot) error) Option { return func(o *options) { o.validate = f } }

// WithUpdateHandler sets the function that receives each published snapshot,
// before the response is ACKed. It runs on the client's goroutine and must
// not block.
func WithUpdateHandler(f func(*Snapshot)) Option { return func(o *options) { o.onUpdate = f } }

// Status is the client's view of its connection and configuration.
type Status struct {
	// Server is the xDS server address.
	Server string `json:"server"`
	// Connected is true while an ADS stream is open and the server has
	// answered on it (the request goes out with the first Send, whether or
	// not a server is there to read it: a live server answers the first
	// requests at once).
	Connected bool `json:"connected"`
	// Since is when Connected last changed.
	Since time.Time `json:"since"`
	// LastError is why the last stream ended (or could not be opened).
	LastError string `json:"lastError,omitempty"`
	// Ready is true once the first configuration was accepted and published.
	Ready bool `json:"ready"`
	// Acked is the last ACKed version of each type URL.
	Acked map[string]string `json:"acked"`
	// LastNACK is the last rejected response, if any.
	LastNACK *NACK `json:"lastNack,omitempty"`
}

// NACK records one rejected response.
type NACK struct {
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Nonce   string    `json:"nonce"`
	Reason  string    `json:"reason"`
	Time    time.Time `json:"time"`
}

// maxReasonLen bounds the error_detail message sent to the control plane.
const maxReasonLen = 4096

// Client is an ADS (state of the world) client. Create it with New and run
// it with Run.
type Client struct {
	server string
	node   *core.Node
	opts   options
	log    *slog.Logger

	// Owned by the Run goroutine.
	state        *Snapshot // last accepted: the last good config
	haveLDS      bool
	haveCDS      bool
	types        map[string]*typeState
	published    bool      // the first snapshot was published
	last         *Snapshot // the snapshot last published
	warmDeadline time.Time // while the state is incomplete: when to publish it anyway

	current   atomic.Pointer[Snapshot]
	ready     chan struct{}
	readyOnce sync.Once

	mu     sync.Mutex
	status Status
}

// typeState is the subscription and ACK state of one resource type.
type typeState struct {
	url string
	// names is the subscription; nil for the wildcard types (LDS, CDS).
	names    []string
	wildcard bool
	// acked is the last ACKed version; kept across streams so that a new
	// stream resumes from it.
	acked string
	// nonce is the last nonce received on the current stream.
	nonce string
	// subscribed is true once a request was sent on the current stream.
	subscribed bool
	// nackVersion and nackCount count rejections of the same version, to
	// slow down a server that resends a rejected version at once.
	nackVersion string
	nackCount   int
	// pending is a delayed NACK, sent at due.
	pending *rpcstatus.Status
	due     time.Time
	// held is a response that names clusters not received yet, kept
	// unanswered until the next accepted CDS response or holdUntil.
	held      *discovery.DiscoveryResponse
	holdUntil time.Time
}

// holdTimeout bounds how long a listener or route response that names
// clusters not received yet waits for them before it is NACKed. Without
// WithOrderedADS, go-control-plane's server sends the types of one push in
// any order.
const holdTimeout = 2 * time.Second

func newTypes() map[string]*typeState {
	return map[string]*typeState{
		TypeCluster:  {url: TypeCluster, wildcard: true},
		TypeEndpoint: {url: TypeEndpoint},
		TypeListener: {url: TypeListener, wildcard: true},
		TypeRoute:    {url: TypeRoute},
		TypeSecret:   {url: TypeSecret},
	}
}

// order is the order requests are sent in on a new stream: clusters and
// their endpoints before the listeners and routes that name them (Envoy's
// recommended ADS order), so route references resolve on arrival.
var order = []string{TypeCluster, TypeEndpoint, TypeListener, TypeRoute, TypeSecret}

// New returns a client for the ADS server at server (host:port) that
// identifies itself as node. It does not connect until Run.
func New(server string, node Node, opts ...Option) (*Client, error) {
	o := options{
		backoffBase:     200 * time.Millisecond,
		backoffMax:      3 * time.Second,
		nackBackoffBase: 250 * time.Millisecond,
		warmingTimeout:  15 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if server == "" {
		return nil, errors.New("xdsclient: server address is required")
	}
	np, err := node.proto()
	if err != nil {
		return nil, err
	}
	c := &Client{
		server: server,
		node:   np,
		opts:   o,
		log:    o.logger.With("component", "xdsclient", "server", server),
		state:  emptySnapshot(),
		types:  newTypes(),
		ready:  make(chan struct{}),
		status: Status{Server: server, Acked: map[string]string{}},
	}
	return c, nil
}

// Snapshot returns the last accepted configuration (nil before the first).
// It may be incomplete before Ready.
func (c *Client) Snapshot() *Snapshot { return c.current.Load() }

// Ready is closed once the first configuration was accepted and published.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Status returns a copy of the client's status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Acked = maps.Clone(s.Acked)
	if s.LastNACK != nil {
		n := *s.LastNACK
		s.LastNACK = &n
	}
	return s
}

// Run connects and keeps the ADS stream up until ctx is done, reconnecting
// with jittered exponential backoff. Between streams the last accepted
// configuration stays in force; a new stream resends the last ACKed version
// of every type. Run returns nil when ctx is done, and an error only when the
// client cannot be set up at all.
func (c *Client) Run(ctx context.Context) error {
	hc, base := c.opts.httpClient, c.opts.baseURL
	if hc == nil {
		tr := cpconn.NewTransport(nil)
		defer tr.CloseIdleConnections()
		hc, base = &http.Client{Transport: tr}, cpconn.BaseURL(c.server, false)
	}
	ads := newADSClient(hc, base)

	bo := backoff{base: c.opts.backoffBase, max: c.opts.backoffMax}
	for {
		healthy, err := c.session(ctx, ads)
		if ctx.Err() != nil {
			c.setConnected(false, nil)
			return nil
		}
		if healthy {
			bo.reset()
		}
		delay := bo.next()
		c.setConnected(false, err)
		c.log.Warn("xds stream ended; serving the last accepted config, reconnecting",
			"error", err, "backoff", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one ADS stream until it breaks. healthy reports whether the
// server answered at all (then the reconnect backoff starts over).
func (c *Client) session(ctx context.Context, ads adsClient) (healthy bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := ads.open(sctx)
	s := &session{c: c, stream: stream, first: true}
	for _, ts := range c.types {
		ts.nonce, ts.subscribed, ts.pending, ts.due, ts.held = "", false, nil, time.Time{}, nil
	}

	// The receive goroutine only moves responses to this one, which owns
	// all state and is the only one to Send. It runs from the start: a
	// Send that fails because the call failed (io.EOF) leaves the reason
	// to Receive (streamErr).
	recv := make(chan *discovery.DiscoveryResponse)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Receive()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case recv <- resp:
			case <-sctx.Done():
				return
			}
		}
	}()
	defer func() {
		// net/http's HTTP/2 client notices the cancelled context only once
		// the request body is closed (it is blocked reading it), so the
		// request side is closed before the response is waited for.
		cancel()
		_ = stream.CloseRequest()
		<-done
		_ = stream.CloseResponse()
	}()
	streamErr := func(err error) error {
		if !errors.Is(err, io.EOF) {
			return err
		}
		for {
			select {
			case rerr := <-recvErr:
				return fmt.Errorf("%w: %w", err, rerr)
			case <-recv:
				// A response read before the call failed: the receive
				// goroutine would wait on it forever, and Receive's
				// reason with it. The stream is dead; drop it.
			case <-ctx.Done():
				return err
			}
		}
	}

	for _, url := range order {
		ts := c.types[url]
		if ts.wildcard || len(ts.names) > 0 {
			if err := s.send(ts, nil); err != nil {
				return false, streamErr(err)
			}
		}
	}
	c.log.Debug("xds stream requested", "node", c.node.GetId())

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.armTimer(timer)
		select {
		case <-ctx.Done():
			return healthy, ctx.Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the stream")
			}
			return healthy, fmt.Errorf("receive: %w", err)
		case resp := <-recv:
			if !healthy {
				healthy = true
				c.setConnected(true, nil)
				c.log.Info("xds stream open", "node", c.node.GetId())
			}
			if err := s.handle(resp, time.Time{}); err != nil {
				return healthy, streamErr(err)
			}
		case now := <-timer.C:
			for _, url := range order {
				ts := c.types[url]
				if ts.held != nil && !now.Before(ts.holdUntil) {
					held := ts.held
					ts.held = nil
					if err := s.handle(held, ts.holdUntil); err != nil {
						return healthy, streamErr(err)
					}
				}
				if ts.pending != nil && !now.Before(ts.due) {
					if err := s.send(ts, ts.pending); err != nil {
						return healthy, streamErr(err)
					}
				}
			}
			c.maybePublish(now)
		}
	}
}

// armTimer sets timer to the earliest delayed NACK or, while an incomplete
// configuration waits, the warming deadline.
func (c *Client) armTimer(t *time.Timer) {
	var next time.Time
	for _, ts := range c.types {
		if ts.pending != nil && (next.IsZero() || ts.due.Before(next)) {
			next = ts.due
		}
		if ts.held != nil && (next.IsZero() || ts.holdUntil.Before(next)) {
			next = ts.holdUntil
		}
	}
	if c.last != c.state && !c.warmDeadline.IsZero() && (next.IsZero() || c.warmDeadline.Before(next)) {
		next = c.warmDeadline
	}
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 0))
}

type session struct {
	c      *Client
	stream adsStream
	first  bool
}

// send sends the current request for ts: an ACK (detail nil), a NACK, or a
// subscription change.
func (s *session) send(ts *typeState, detail *rpcstatus.Status) error {
	req := &discovery.DiscoveryRequest{
		VersionInfo:   ts.acked,
		ResourceNames: ts.names,
		TypeUrl:       ts.url,
		ResponseNonce: ts.nonce,
		ErrorDetail:   detail,
	}
	if s.first {
		req.Node = s.c.node
		s.first = false
	}
	ts.subscribed = true
	ts.pending, ts.due = nil, time.Time{}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("send %s request: %w", shortType(ts.url), err)
	}
	return nil
}

// handle validates one response and ACKs, NACKs or holds it. holdUntil is
// the deadline of a response that was held before (zero for a new one).
func (s *session) handle(resp *discovery.DiscoveryResponse, holdUntil time.Time) error {
	c := s.c
	ts := c.types[resp.GetTypeUrl()]
	if ts == nil {
		c.log.Warn("ignoring response of a type the sidecar did not ask for", "type", resp.GetTypeUrl())
		return nil
	}
	ts.nonce = resp.GetNonce()
	ts.held = nil
	if ts.url == TypeSecret {
		return s.handleSecrets(ts, resp)
	}
	cand, missingOnly, err := c.candidate(ts, resp)
	resources := len(resp.GetResources())
	if err == nil {
		// The candidate holds what it needs decoded (an assignment its wire
		// form): the encoded resources go before the update handler
		// compiles the configuration. A rejected response keeps them, to
		// be handled again when it is held.
		resp.Resources = nil
	}
	if err == nil && c.opts.validate != nil {
		err = c.opts.validate(cand)
	}
	if err != nil {
		now := time.Now()
		if holdUntil.IsZero() {
			holdUntil = now.Add(holdTimeout)
		}
		// Clusters of this push may still be on their way: wait for them,
		// unless clusters of the same version were accepted already.
		if missingOnly && resp.GetVersionInfo() != c.types[TypeCluster].acked && now.Before(holdUntil) {
			c.log.Debug("holding a response that names clusters not received yet", "type", shortType(ts.url),
				"version", resp.GetVersionInfo(), "reason", err)
			ts.held, ts.holdUntil = resp, holdUntil
			return nil
		}
		return s.nack(ts, resp, err)
	}

	c.commit(ts, resp.GetVersionInfo(), cand)
	c.log.Debug("xds config accepted", "type", shortType(ts.url), "version", resp.GetVersionInfo(),
		"resources", resources, "complete", cand.Complete)
	if err := s.send(ts, nil); err != nil {
		return err
	}
	switch ts.url {
	case TypeListener:
		if err := s.resubscribe(c.types[TypeSecret], cand.SecretNames()); err != nil {
			return err
		}
		return s.resubscribe(c.types[TypeRoute], cand.RouteNames())
	case TypeCluster:
		if err := s.resubscribe(c.types[TypeSecret], cand.SecretNames()); err != nil {
			return err
		}
		if err := s.resubscribe(c.types[TypeEndpoint], cand.EndpointNames()); err != nil {
			return err
		}
		// Held listeners and routes may resolve now.
		for _, url := range []string{TypeListener, TypeRoute} {
			if h := c.types[url]; h.held != nil {
				held, until := h.held, h.holdUntil
				h.held = nil
				if err := s.handle(held, until); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resubscribe changes the names ts is subscribed to, when they changed.
func (s *session) resubscribe(ts *typeState, names []string) error {
	if slices.Equal(ts.names, names) && (ts.subscribed || len(names) == 0) {
		return nil
	}
	ts.names = names
	if len(names) == 0 && !ts.subscribed {
		return nil
	}
	return s.send(ts, ts.pending)
}

// nack rejects resp. The first rejection of a version is sent at once; when
// the server sends the same version again (a snapshot cache resends a
// rejected version immediately), the NACK is delayed with backoff so the
// two do not spin.
func (s *session) nack(ts *typeState, resp *discovery.DiscoveryResponse, err error) error {
	c := s.c
	reason := fmt.Sprintf("%s version %q rejected: %v", shortType(ts.url), resp.GetVersionInfo(), err)
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen-3] + "..."
	}
	if resp.GetVersionInfo() == ts.nackVersion {
		ts.nackCount++
	} else {
		ts.nackVersion, ts.nackCount = resp.GetVersionInfo(), 1
	}
	now := time.Now()
	c.mu.Lock()
	c.status.LastNACK = &NACK{TypeURL: ts.url, Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(), Reason: reason, Time: now}
	c.mu.Unlock()
	detail := &rpcstatus.Status{Code: int32(connect.CodeInvalidArgument), Message: reason}
	if ts.nackCount == 1 {
		c.log.Warn("xds config rejected; keeping the last accepted config", "type", shortType(ts.url),
			"version", resp.GetVersionInfo(), "keep_version", ts.acked, "reason", reason)
		return s.send(ts, detail)
	}
	delay := c.opts.nackBackoffBase << min(ts.nackCount-2, 8)
	delay = min(delay, c.opts.backoffMax)
	c.log.Debug("xds config rejected again; delaying the NACK", "type", shortType(ts.url),
		"version", resp.GetVersionInfo(), "count", ts.nackCount, "delay", delay)
	ts.pending, ts.due = detail, now.Add(delay)
	return nil
}

// candidate builds the snapshot that accepting resp would give, or the
// reasons to reject it. missingOnly reports that every reason is a route
// naming a cluster that is not (yet) accepted.
func (c *Client) candidate(ts *typeState, resp *discovery.DiscoveryResponse) (cand *Snapshot, missingOnly bool, err error) {
	var errs, missing []error
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != ts.url {
			errs = append(errs, fmt.Errorf("resource %d: type %s in a %s response", i, a.GetTypeUrl(), shortType(ts.url)))
		}
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	cur := c.state
	cand = cur.with()
	switch ts.url {
	case TypeListener:
		ls := make(map[string]*Listener, len(resp.GetResources()))
		for _, a := range resp.GetResources() {
			l, err := decodeListener(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ls[l.Name] != nil {
				errs = append(errs, resourceError("listener", l.Name, errors.New("duplicate name")))
				continue
			}
			for _, fc := range l.Chains {
				if fc.Route == nil {
					continue
				}
				if err := checkRouteClusters(fc.Route, cur.Clusters); err != nil {
					missing = append(missing, resourceError("listener", l.Name,
						fmt.Errorf("filter chain %q: route %q: %w", fc.Name, fc.Route.GetName(), err)))
				}
			}
			ls[l.Name] = l
		}
		cand.Listeners = ls
		cand.Routes = prune(cur.Routes, routeNames(ls))
		cand.Versions.Listeners = resp.GetVersionInfo()
	case TypeCluster:
		cs := make(map[string]*Cluster, len(resp.GetResources()))
		for _, a := range resp.GetResources() {
			cl, err := decodeCluster(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if cs[cl.Name] != nil {
				errs = append(errs, resourceError("cluster", cl.Name, errors.New("duplicate name")))
				continue
			}
			cs[cl.Name] = cl
		}
		// A cluster that a current route still names may go: the control
		// plane removes the route right after (make before break), and
		// until then that route answers 503.
		cand.Clusters = cs
		cand.Endpoints = prune(cur.Endpoints, endpointNames(cs))
		cand.Versions.Clusters = resp.GetVersionInfo()
	case TypeRoute:
		want := set(ts.names)
		routes := maps.Clone(cur.Routes)
		for _, a := range resp.GetResources() {
			rc, err := decodeRoute(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !want[rc.GetName()] {
				c.log.Debug("ignoring a route configuration the sidecar did not ask for", "name", rc.GetName())
				continue
			}
			if err := checkRouteClusters(rc, cur.Clusters); err != nil {
				missing = append(missing, resourceError("route", rc.GetName(), err))
				continue
			}
			routes[rc.GetName()] = rc
		}
		cand.Routes = routes
		cand.Versions.Routes = resp.GetVersionInfo()
	case TypeEndpoint:
		want := set(ts.names)
		eps := maps.Clone(cur.Endpoints)
		for _, a := range resp.GetResources() {
			as, err := decodeEndpoints(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !want[as.Name] {
				c.log.Debug("ignoring endpoints the sidecar did not ask for", "name", as.Name)
				continue
			}
			eps[as.Name] = as
		}
		cand.Endpoints = eps
		cand.Versions.Endpoints = resp.GetVersionInfo()
	}
	if c.opts.secrets == nil && len(errs) == 0 {
		errs = append(errs, checkNoTLS(cand)...)
	}
	if len(errs)+len(missing) > 0 {
		return nil, len(errs) == 0, errors.Join(append(errs, missing...)...)
	}
	cand.Complete = cand.complete(c.haveLDS || ts.url == TypeListener, c.haveCDS || ts.url == TypeCluster)
	return cand, false, nil
}

// commit makes cand the accepted configuration and publishes it.
func (c *Client) commit(ts *typeState, version string, cand *Snapshot) {
	now := time.Now()
	c.state = cand
	switch ts.url {
	case TypeListener:
		c.haveLDS = true
	case TypeCluster:
		c.haveCDS = true
	}
	ts.acked = version
	ts.nackVersion, ts.nackCount = "", 0
	ts.pending, ts.due = nil, time.Time{}
	c.current.Store(cand)
	c.mu.Lock()
	c.status.Acked[ts.url] = version
	c.mu.Unlock()
	switch {
	case cand.Complete:
		c.warmDeadline = time.Time{}
	case c.warmDeadline.IsZero() && c.haveLDS && c.haveCDS:
		c.warmDeadline = now.Add(c.opts.warmingTimeout)
	}
	c.maybePublish(now)
}

// maybePublish hands the accepted configuration to the update handler once
// it is complete, or once the warming deadline passed with listeners and
// clusters accepted.
func (c *Client) maybePublish(now time.Time) {
	s := c.state
	if s == c.last || !c.haveLDS || !c.haveCDS {
		return
	}
	if !s.Complete {
		if c.warmDeadline.IsZero() || now.Before(c.warmDeadline) {
			return
		}
		c.log.Warn("warming timeout: publishing a config that references resources that have not arrived",
			"missing_routes", missing(s.RouteNames(), s.Routes),
			"missing_endpoints", missing(s.EndpointNames(), s.Endpoints))
	}
	c.last = s
	if c.opts.onUpdate != nil {
		c.opts.onUpdate(s)
	}
	if !c.published {
		c.published = true
		c.mu.Lock()
		c.status.Ready = true
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })
		c.log.Info("first xds config applied", "listeners", len(s.Listeners), "routes", len(s.Routes),
			"clusters", len(s.Clusters), "endpoints", len(s.Endpoints))
	}
}

func (c *Client) setConnected(connected bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.Connected != connected || c.status.Since.IsZero() {
		c.status.Since = time.Now()
	}
	c.status.Connected = connected
	if err != nil {
		c.status.LastError = err.Error()
	}
}

func prune[V any](m map[string]V, keep []string) map[string]V {
	out := make(map[string]V, len(keep))
	for _, k := range keep {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func set(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

func missing[V any](names []string, m map[string]V) []string {
	var out []string
	for _, n := range names {
		if _, ok := m[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// shortType is the last element of a type URL, for logs and messages.
func shortType(url string) string {
	switch url {
	case TypeListener:
		return "LDS"
	case TypeRoute:
		return "RDS"
	case TypeCluster:
		return "CDS"
	case TypeEndpoint:
		return "EDS"
	case TypeSecret:
		return "SDS"
	}
	return url
}
