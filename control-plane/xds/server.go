package xds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/translate"
)

// TypeURLs are the resource types Weft serves, in push order, at their
// indexes below.
var typeURLs = [...]string{
	clusterTypeIndex:  resource.ClusterType,
	endpointTypeIndex: resource.EndpointType,
	listenerTypeIndex: resource.ListenerType,
	routeTypeIndex:    resource.RouteType,
	secretTypeIndex:   resource.SecretType,
}

// Each type's index in typeURLs.
const (
	clusterTypeIndex = iota
	endpointTypeIndex
	listenerTypeIndex
	routeTypeIndex
	secretTypeIndex
)

// ErrUnknownProxy is returned by ConfigDump for a node that has no snapshot.
var ErrUnknownProxy = errors.New("xds: no such proxy")

// Server serves ADS (state of the world and delta) from one snapshot per
// connected node. See the package doc.
type Server struct {
	log      *slog.Logger
	mc       meshconfig.Config
	delay    time.Duration
	maxDelay time.Duration
	now      func() time.Time
	auth     Authenticator
	obs      Observer
	acks     *ackTracker
	admit    *admission // nil: no bound on connecting nodes
	// maxConnecting bounds the nodes receiving their first
	// configuration at once (admit.go); 0: no bound.
	maxConnecting int
	// maxSubscriptions bounds the resource names one stream subscribes
	// per type (WithMaxSubscriptions); 0: no bound.
	maxSubscriptions int
	// returnMemory runs on Run's goroutine after a connect burst
	// (bursts); nil: never.
	returnMemory func()
	bursts       chan int // nodes admitted in a burst that ended

	snaps     snapshotStore
	cb        callbacks // status, behind guard with WithAuthenticator
	streamIDs atomic.Int64
	status    *status
	kick      chan struct{}

	// streamCtx ends every ADS stream when Run returns.
	streamCtx     context.Context
	cancelStreams context.CancelFunc

	// pendMu guards pending and pendingSince only, so that Update never
	// waits for a push in progress (which holds mu).
	pendMu  sync.Mutex
	pending *model.State
	// pendingSince is when the first Update since the last push came.
	pendingSince time.Time
	ready        atomic.Bool   // a registry state has been pushed
	pushed       chan struct{} // closed with the first push of a state

	mu     sync.Mutex // serializes snapshot building; guards the fields below
	state  *model.State
	seq    uint64
	nodes  map[string]*nodeState
	shapes shapeCache // translations of state by proxy shape
	// certs: by node id, the latest chain issued; written under mu and
	// certMu, read under either (Certificates takes certMu only).
	certMu     sync.RWMutex
	certs      map[string]issuedCert
	bundle     []byte        // the trust bundle, PEM
	rootSecret *tlsv3.Secret // "ROOTCA" of bundle (nil when empty)
}

// nodeState is what the server remembers of a connected node's snapshot.
type nodeState struct {
	sums     [numTypes]typeSum
	versions [numTypes]string
	// config is the node's translation (every type but Secrets), made
	// from shape (nil when the node was translated on its own, from
	// builtFrom) for a workload at addr; reused while they stay the same.
	config     [numTypes][]types.Resource
	configSums [numTypes]typeSum
	// items and vmaps are config's snapshot maps (nil: not made yet),
	// shared with shape where config is the shape's.
	items     [numTypes]map[string]types.ResourceWithTTL
	vmaps     [numTypes]map[string]string
	shape     *shaped
	addr      string
	builtFrom *model.State
	// secrets are the Secret objects of the last snapshot.
	secrets []types.Resource
	// connecting: the node's first snapshot is being built; it is not a
	// push that latency metrics follow.
	connecting bool
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithDebounce sets how long the server waits for quiet after a registry
// update before it pushes (default mesh.DefaultDebounce); a continuous
// stream of updates is still pushed every 10 × delay.
func WithDebounce(d time.Duration) Option {
	return func(s *Server) { s.delay, s.maxDelay = d, 10*d }
}

// WithAuthenticator makes every ADS stream authenticate (see Authenticator)
// and refuses requests whose node.id is not the authenticated node. Without
// it streams are not authenticated (tests, --insecure-xds).
func WithAuthenticator(a Authenticator) Option { return func(s *Server) { s.auth = a } }

// WithMaxConnecting bounds how many nodes receive their first
// configuration at once (default mesh.DefaultMaxConnecting; n <= 0: no
// bound). A node beyond it waits, on its stream, until another one has
// answered its first responses (see admission).
func WithMaxConnecting(n int) Option { return func(s *Server) { s.maxConnecting = max(n, 0) } }

// WithMaxSubscriptions bounds the resource names one ADS stream may
// subscribe to per type (default mesh.DefaultMaxSubscriptions; n <= 0: no
// bound): a SotW request naming more, or delta requests that would take a
// type's subscription (once a request's subscribe and unsubscribe lists
// applied; names unsubscribed from under "*" count until the type's next
// response) or a first request's initial_resource_versions past it, end
// their stream with ResourceExhausted, naming the type and the limit.
// Other streams are not affected.
func WithMaxSubscriptions(n int) Option { return func(s *Server) { s.maxSubscriptions = max(n, 0) } }

// WithReturnMemory makes the server call f (the daemon passes
// debug.FreeOSMemory) on Run's goroutine when a connect burst ends: at
// least the admission bound of nodes got their first configuration and
// none is connecting any more (see admission). Without it, or without an
// admission bound, the runtime's scavenger returns the burst's freed heap
// as it sees fit.
func WithReturnMemory(f func()) Option { return func(s *Server) { s.returnMemory = f } }

// WithClock sets the time source of ConnectedAt (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New returns a Server for the mesh config. It serves nothing until
// Register and pushes nothing until Run.
func New(mc meshconfig.Config, opts ...Option) *Server {
	s := &Server{
		log:   slog.New(slog.DiscardHandler),
		mc:    mc.WithDefaults(),
		delay: mesh.DefaultDebounce, maxDelay: 10 * mesh.DefaultDebounce,
		now:   time.Now,
		kick:  make(chan struct{}, 1),
		nodes: map[string]*nodeState{},
		certs: map[string]issuedCert{},
		obs:   nopObserver{},

		pushed:           make(chan struct{}),
		maxConnecting:    mesh.DefaultMaxConnecting,
		maxSubscriptions: mesh.DefaultMaxSubscriptions,
		bursts:           make(chan int, 1),
	}
	for _, o := range opts {
		o(s)
	}
	if s.maxConnecting > 0 {
		s.admit = newAdmission(s.maxConnecting, admissionHold, func(n int) {
			select {
			case s.bursts <- n:
			default: // one is pending already
			}
		})
	}
	s.acks = newAckTracker(s.obs, s.now)
	s.streamCtx, s.cancelStreams = context.WithCancel(context.Background())
	s.status = newStatus(s.now, s.nodeConnected, s.nodeDisconnected)
	s.status.obs, s.status.acked = s.obs, s.acks.acked
	s.snaps = newSnapshots()
	s.cb = s.status
	if s.auth != nil {
		s.cb = newGuard(s.status, s.auth, s.log)
	}
	return s
}

// Register adds the Aggregated Discovery Service (both its SotW and its
// delta method) to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, ads{s})
}

// Update hands the server a new registry state. It never blocks: the
// latest state wins and the debouncer pushes it.
func (s *Server) Update(st model.State) {
	s.pendMu.Lock()
	if s.pending == nil {
		s.pendingSince = s.now()
	}
	s.pending = &st
	s.pendMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run debounces updates and pushes them until ctx is done; then it ends
// every open ADS stream (so a graceful gRPC stop can finish) and returns nil.
func (s *Server) Run(ctx context.Context) error {
	defer s.cancelStreams()
	var wg sync.WaitGroup
	if s.returnMemory != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case n := <-s.bursts:
					t0 := s.now()
					s.returnMemory()
					s.log.Info("connect burst ended: freed memory returned to the OS", "proxies", n, "took", s.now().Sub(t0))
				}
			}
		})
	}
	d := &debouncer{delay: s.delay, maxDelay: s.maxDelay, push: s.Push}
	d.run(ctx, s.kick)
	wg.Wait()
	return nil
}

// Ready reports whether a registry state has been pushed.
func (s *Server) Ready() bool { return s.ready.Load() }

// Proxies lists the connected proxies with their per-type versions.
func (s *Server) Proxies() []ProxyStatus { return s.status.Proxies() }

// PendingPushes is the number of pushes some proxy they changed has not
// ACKed yet (the backlog).
func (s *Server) PendingPushes() int { return s.acks.pending() }

// Connected is the number of connected proxies (cheaper than Proxies).
func (s *Server) Connected() int { return s.status.connected() }

// Push translates the latest Update for every connected node and sets a
// new snapshot for each node whose resources changed. The debouncer calls
// it; tests may call it directly.
func (s *Server) Push() {
	s.pendMu.Lock()
	next, since := s.pending, s.pendingSince
	s.pending = nil
	s.pendMu.Unlock()
	if next == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = next
	if !s.ready.Swap(true) {
		close(s.pushed)
	}
	s.seq++
	if s.shapes.hashes != nil {
		s.shapes.hashes.rotate()
	}
	s.acks.begin(s.seq, since)
	defer s.acks.commit(s.seq)
	changed := 0
	for id, n := range s.nodes {
		if s.syncNode(id, n) {
			changed++
		}
	}
	s.log.Info("xds push", "version", s.seq, "proxies", len(s.nodes), "changed", changed)
}

// admissionHold bounds how long a connecting node keeps its admission
// slot when it never answers its first responses.
const admissionHold = 10 * time.Second

// nodeConnected runs when a node's first stream names it, on that stream's
// goroutine (ctx is the stream's). With an admission bound it first waits
// for the first registry state (nodes that connect before it, as after a
// restart, would otherwise all get their first snapshot in one push) and
// then for a slot, which status frees once the node has answered its first
// configuration; a stream that ends (or a server that stops) while
// waiting goes on without one, as it will send nothing much.
func (s *Server) nodeConnected(ctx context.Context, id string) {
	release := func() {}
	if s.admit != nil {
		ctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(s.streamCtx, cancel) //nolint:contextcheck // the wait also ends when the server stops, not only with the stream
		select {
		case <-s.pushed:
		case <-ctx.Done():
		}
		r, err := s.admit.enter(ctx)
		stop()
		cancel()
		if err == nil {
			release = r
		} else {
			s.log.Debug("proxy connects without an admission slot", "proxy", id, "err", err)
		}
	}
	s.status.admit(id, s.connectNode(id), release)
}

// connectNode builds a connecting node's first snapshot and returns the
// types it has resources of (what the node will be waited for).
func (s *Server) connectNode(id string) (want uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &nodeState{connecting: true}
	s.nodes[id] = n
	s.log.Info("proxy connected", "proxy", id)
	s.syncNode(id, n)
	n.connecting = false
	if n.versions[0] == "" {
		return 0 // no snapshot (no registry state yet, or translation failed)
	}
	for i, typ := range typeURLs {
		if len(n.config[i]) > 0 || (typ == resource.SecretType && len(n.secrets) > 0) {
			want |= typeBit(typ)
		}
	}
	return want
}

// nodeDisconnected runs when a node's last stream closes. A stream of the
// node may have joined since (status calls it outside its lock, and it
// waits here for a push): the node is connected again and keeps its
// snapshot.
func (s *Server) nodeDisconnected(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.isConnected(id) {
		return
	}
	delete(s.nodes, id)
	s.snaps.clear(id)
	s.acks.forget(id)
	s.log.Info("proxy disconnected", "proxy", id)
}

// syncNode builds the node's resources from the current state and sets a
// snapshot if any type changed; each type keeps its version while its
// content stays the same. A node id without a workload gets an empty
// snapshot. When translation fails the node keeps its previous snapshot.
// s.mu is held.
func (s *Server) syncNode(id string, n *nodeState) bool {
	if s.state == nil {
		return false
	}
	w, known := s.state.Workload(id)
	var sh *shaped
	if known {
		var err error
		if sh, err = s.shapes.get(s.state, w, s.mc); err != nil {
			s.log.Error("translate failed; proxy keeps its previous config", "proxy", id, "err", err)
			return false
		}
	}
	sec := s.secrets(id)
	fresh := n.versions[0] != "" && slices.Equal(sec, n.secrets)
	switch {
	case sh != nil:
		if sh == n.shape && n.addr == w.Address {
			if fresh {
				return false // same translation, same secrets: nothing to do
			}
			break
		}
		if err := s.configFromShape(n, sh, w, s.status.delta(id)); err != nil {
			s.log.Error("hash failed; proxy keeps its previous config", "proxy", id, "err", err)
			return false
		}
	case n.builtFrom != s.state || n.shape != nil:
		var config [numTypes][]types.Resource
		if known {
			res, err := s.shapes.idx.Build(w)
			if err != nil {
				s.log.Error("translate failed; proxy keeps its previous config", "proxy", id, "err", err)
				return false
			}
			config = resourcesByType(res)
		}
		var sums [numTypes]typeSum
		for i := range config {
			var err error
			if sums[i], err = s.shapes.hashes.sum(config[i]); err != nil {
				s.log.Error("hash failed; proxy keeps its previous config", "proxy", id, "err", err)
				return false
			}
		}
		n.config, n.configSums, n.shape, n.addr, n.builtFrom = config, sums, nil, w.Address, s.state
		n.items, n.vmaps = [numTypes]map[string]types.ResourceWithTTL{}, [numTypes]map[string]string{}
	}
	if len(sec) > 0 && !slices.Equal(sec, n.secrets) {
		if err := validateSecrets(sec); err != nil {
			s.log.Error("secrets invalid; proxy keeps its previous config", "proxy", id, "err", err)
			return false
		}
	}
	byType, sums := n.config, n.configSums
	si := secretTypeIndex
	byType[si] = sec
	var err error
	if sums[si], err = s.shapes.hashes.sum(sec); err != nil {
		s.log.Error("hash failed; proxy keeps its previous config", "proxy", id, "err", err)
		return false
	}
	version := strconv.FormatUint(s.seq, 10)
	changed := false
	var mask uint8
	for i, typ := range typeURLs {
		if n.versions[i] == "" || n.sums[i] != sums[i] {
			had := n.versions[i] != "" && n.sums[i] != emptySum
			changed = true
			// A type that stays empty is never subscribed by some
			// proxies (Secrets without mTLS): do not wait for its ACK.
			if len(byType[i]) > 0 || had {
				mask |= typeBit(typ)
			}
		}
	}
	if !changed {
		n.secrets = sec
		return false
	}
	// The delta version maps are filled in here from the hash cache. No
	// consistency check: translate.Build checked the references, and a
	// replica's rewrite changes addresses only.
	// Only a node with a delta stream gets version maps (a SotW stream
	// never reads them; should a delta stream come later, it hashes the
	// snapshot's resources itself).
	delta := s.status.delta(id)
	snap := &snapshot{}
	versions := n.versions
	for i := range typeURLs {
		if versions[i] == "" || n.sums[i] != sums[i] {
			versions[i] = version
		}
		items, vm := n.items[i], n.vmaps[i]
		if i == si || items == nil {
			items = itemsByName(byType[i], s.shapes.hashes)
			if i != si {
				n.items[i], n.vmaps[i] = items, nil
			}
		}
		if delta && vm == nil {
			var err error
			if vm, err = s.shapes.hashes.versionMap(byType[i]); err != nil {
				s.log.Error("hash failed; proxy keeps its previous config", "proxy", id, "err", err)
				return false
			}
			if i != si {
				n.vmaps[i] = vm
			}
		}
		snap.versions[i], snap.items[i], snap.vmaps[i] = versions[i], items, vm
	}
	// Expect the ACKs before the snapshot is published: the node's stream
	// may answer at once, and its ACK can arrive before publish returns
	// (an ACK nobody expects yet would be lost and the push never
	// reported complete).
	if !n.connecting {
		s.acks.expect(id, s.seq, mask)
	}
	s.snaps.set(id, snap)
	s.status.wake(id)
	n.sums, n.versions, n.secrets = sums, versions, sec
	return true
}

// configFromShape sets the node's config from its shape's translation
// for workload w: a type whose content is what the node has already keeps
// the node's objects; the others are the shape's, with the listeners and
// clusters rewritten to w's address on a replica. s.mu is held.
func (s *Server) configFromShape(n *nodeState, sh *shaped, w model.Workload, delta bool) error {
	var config [numTypes][]types.Resource
	var sums [numTypes]typeSum
	replica := sh.rep.Name != w.Name || sh.rep.Address != w.Address
	var items [numTypes]map[string]types.ResourceWithTTL
	var vmaps [numTypes]map[string]string
	var rewritten *[numTypes][]types.Resource
	for i, typ := range typeURLs {
		switch {
		case n.shape != nil && n.addr == w.Address && n.shape.sums[i] == sh.sums[i]:
			config[i], sums[i] = n.config[i], n.configSums[i] // unchanged
			items[i], vmaps[i] = n.items[i], n.vmaps[i]
			continue
		case replica && (typ == resource.ListenerType || typ == resource.ClusterType):
			if rewritten == nil {
				r := resourcesByType(rewrite(sh.res, sh.rep.Address, w.Address))
				rewritten = &r
			}
			config[i] = rewritten[i]
		default:
			config[i], sums[i] = sh.byType[i], sh.sums[i] // shared with the shape
			var err error
			if items[i], vmaps[i], err = sh.snapshotMaps(i, s.shapes.hashes, delta); err != nil {
				return err
			}
			continue
		}
		var err error
		if sums[i], err = s.shapes.hashes.sum(config[i]); err != nil {
			return err
		}
	}
	n.config, n.configSums, n.items, n.vmaps = config, sums, items, vmaps
	n.shape, n.addr, n.builtFrom = sh, w.Address, nil
	return nil
}

func resourcesByType(r *translate.Resources) [numTypes][]types.Resource {
	var out [numTypes][]types.Resource
	add := func(typ string, m types.Resource) {
		i := typeIndex(typ)
		out[i] = append(out[i], m)
	}
	for _, l := range r.Listeners {
		add(resource.ListenerType, l)
	}
	for _, rc := range r.Routes {
		add(resource.RouteType, rc)
	}
	for _, c := range r.Clusters {
		add(resource.ClusterType, c)
	}
	for _, e := range r.Endpoints {
		add(resource.EndpointType, e)
	}
	return out
}

// ConfigDump is one node's current snapshot, as GET
// /debug/config_dump?proxy=<node id> renders it.
type ConfigDump struct {
	ID string `json:"id"`
	// Resources by type URL.
	Resources map[string]TypeDump `json:"resources"`
}

// TypeDump is the resources of one type and their version.
type TypeDump struct {
	Version string `json:"version"`
	// Items are the resources in protojson, sorted by name.
	Items []json.RawMessage `json:"items"`
}

// ConfigDump returns the snapshot of a connected node, or ErrUnknownProxy.
func (s *Server) ConfigDump(id string) (*ConfigDump, error) {
	snap := s.snaps.get(id)
	if snap == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProxy, id)
	}
	out := &ConfigDump{ID: id, Resources: map[string]TypeDump{}}
	for i, typ := range typeURLs {
		items := snap.items[i]
		names := make([]string, 0, len(items))
		for name := range items {
			names = append(names, name)
		}
		sortStrings(names)
		td := TypeDump{Version: snap.versions[i], Items: []json.RawMessage{}}
		for _, name := range names {
			// A stand-in (hash.go) keeps most of its fields as unknown
			// bytes, which protojson does not render: decode it again.
			r := items[name].Resource
			m := r.ProtoReflect().New().Interface()
			wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err == nil {
				err = proto.Unmarshal(wire, m)
			}
			if err != nil {
				return nil, fmt.Errorf("xds: config dump %s %q: %w", typ, name, err)
			}
			b, err := protojson.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("xds: config dump %s %q: %w", typ, name, err)
			}
			td.Items = append(td.Items, b)
		}
		out.Resources[typ] = td
	}
	return out, nil
}
