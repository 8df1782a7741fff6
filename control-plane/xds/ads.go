package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// snapshot is one node's configuration as its streams serve it: per type
// (typeURLs' order) its version, its resources by name and, for a node
// with a delta stream, each resource's version (its hash). The maps are
// shared with the node's shape and never modified: a push publishes a new
// snapshot.
type snapshot struct {
	versions [numTypes]string
	items    [numTypes]map[string]types.ResourceWithTTL
	vmaps    [numTypes]map[string]string
}

// snapshotStore holds each node's current snapshot (an interface so that
// a test can stand in for the fastest possible proxy).
type snapshotStore interface {
	set(node string, snap *snapshot)
	get(node string) *snapshot
	clear(node string)
}

// snapshots is the snapshotStore: a map under a read-write lock (streams
// read it when woken, the pusher writes it).
type snapshots struct {
	mu sync.RWMutex
	m  map[string]*snapshot
}

func newSnapshots() *snapshots { return &snapshots{m: map[string]*snapshot{}} }

func (s *snapshots) set(node string, snap *snapshot) {
	s.mu.Lock()
	s.m[node] = snap
	s.mu.Unlock()
}

func (s *snapshots) get(node string) *snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[node]
}

func (s *snapshots) clear(node string) {
	s.mu.Lock()
	delete(s.m, node)
	s.mu.Unlock()
}

// callbacks is what the stream handlers tell status (wrapped by guard
// with WithAuthenticator) about each stream. The handlers call them on the
// stream's goroutine: open first (an error ends the stream), then each
// request before it is handled (an error ends the stream), each response
// before it is sent, and closed last, always.
type callbacks interface {
	OnStreamOpen(ctx context.Context, id int64, typeURL string) error
	OnStreamClosed(id int64, node *core.Node)
	OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error
	OnStreamResponse(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse)
	OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error
	OnDeltaStreamClosed(id int64, node *core.Node)
	OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error
	OnStreamDeltaResponse(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse)
}

// ads is the Aggregated Discovery Service: the gRPC methods of Server.
type ads struct{ s *Server }

var _ discovery.AggregatedDiscoveryServiceServer = ads{}

// typeStream is a stream's state for one resource type.
type typeStream struct {
	// subscribed: the type has been requested on the stream.
	subscribed bool
	// wildcard: every resource of the type (a SotW or delta request with
	// no names while none named one yet, or "*").
	wildcard bool
	// explicit: a request named resources (legacy wildcard is over).
	explicit bool
	// dirty: the subscription changed (or is new): answer even if the
	// version is the one sent.
	dirty bool
	// awaiting: the last response (nonce) has not been answered; nothing
	// more of the type is sent until it is (one response in flight per
	// type: a slow proxy gets the latest version when it is ready).
	awaiting bool
	nonce    uint64
	// sent is the version of the last response (or, in delta, the
	// version the stream last caught up with without a response).
	sent string
	// names are the subscribed resource names (sorted, shared strings)
	// when not wildcard.
	names []string
	// Delta: known are the versions the proxy has: the snapshot version
	// map of the last response (shared, not a copy), or its
	// initial_resource_versions before the first; fresh are names
	// subscribed since then (sent whatever known says).
	known map[string]string
	fresh []string
}

// adsStream is one ADS stream; everything in it is owned by the stream's
// handler goroutine.
type adsStream struct {
	s     *Server
	id    int64
	delta bool
	ctx   context.Context
	// node is the id of the first request that named one.
	node string
	// wake is signalled (never blocking) when the node's snapshot changes.
	wake  chan struct{}
	nonce uint64
	types [numTypes]typeStream
}

// StreamAggregatedResources serves a SotW ADS stream.
func (a ads) StreamAggregatedResources(gs grpc.BidiStreamingServer[discovery.DiscoveryRequest, discovery.DiscoveryResponse]) error {
	s := a.s
	st := &adsStream{s: s, id: s.streamIDs.Add(1), ctx: gs.Context(), wake: make(chan struct{}, 1)}
	defer func() { s.cb.OnStreamClosed(st.id, nil) }()
	if err := s.cb.OnStreamOpen(st.ctx, st.id, ""); err != nil {
		return err
	}
	s.status.attach(streamKey{id: st.id}, st.wake)
	return serveStream(st, gs.Recv, func(req *discovery.DiscoveryRequest) error { return st.sotwRequest(req) },
		func(i int, snap *snapshot) error {
			resp, err := st.sotwResponse(i, snap)
			if err != nil || resp == nil {
				return err
			}
			if err := gs.Send(resp); err != nil {
				return err
			}
			// Recorded once it left: a response that never went out is
			// neither "sent" in the status nor counted.
			s.cb.OnStreamResponse(st.ctx, st.id, nil, resp)
			return nil
		})
}

// DeltaAggregatedResources serves a delta (incremental) ADS stream.
func (a ads) DeltaAggregatedResources(gs grpc.BidiStreamingServer[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]) error {
	s := a.s
	st := &adsStream{s: s, id: s.streamIDs.Add(1), delta: true, ctx: gs.Context(), wake: make(chan struct{}, 1)}
	defer func() { s.cb.OnDeltaStreamClosed(st.id, nil) }()
	if err := s.cb.OnDeltaStreamOpen(st.ctx, st.id, ""); err != nil {
		return err
	}
	s.status.attach(streamKey{delta: true, id: st.id}, st.wake)
	return serveStream(st, gs.Recv, func(req *discovery.DeltaDiscoveryRequest) error { return st.deltaRequest(req) },
		func(i int, snap *snapshot) error {
			resp, err := st.deltaResponse(i, snap)
			if err != nil || resp == nil {
				return err
			}
			if err := gs.Send(resp); err != nil {
				return err
			}
			s.cb.OnStreamDeltaResponse(st.id, nil, resp)
			return nil
		})
}

// serveStream runs a stream on its handler goroutine until the proxy
// closes it, the server stops (Run returned) or a request or a send
// fails. A receiver goroutine hands it the requests one at a time (it
// ends with the stream: gRPC cancels the stream when the handler returns);
// the handler handles each, and after each request and each wake sends,
// in typeURLs' order, a response for every type that has something to
// send and no response in flight. The pusher never blocks on a stream: it
// stores the snapshot and signals wake; a proxy that reads slowly holds up
// only its own handler (in Send), and gets the latest snapshot when it
// has caught up.
func serveStream[Req any](st *adsStream, recv func() (*Req, error), handle func(*Req) error, respond func(int, *snapshot) error) error {
	done := make(chan struct{})
	defer close(done)
	reqs := make(chan *Req)
	go func() {
		defer close(reqs)
		for {
			req, err := recv()
			if err != nil {
				return
			}
			select {
			case reqs <- req:
			case <-done:
				return
			}
		}
	}()
	for {
		select {
		case <-st.s.streamCtx.Done():
			return nil
		case <-st.ctx.Done():
			return nil
		case req, ok := <-reqs:
			if !ok {
				return nil
			}
			if err := handle(req); err != nil {
				return err
			}
		case <-st.wake:
		}
		if err := st.flush(respond); err != nil {
			return err
		}
	}
}

// flush sends, in typeURLs' order, a response for every type that has
// something to send from the node's current snapshot and does not wait
// for a type it depends on (held).
func (st *adsStream) flush(respond func(int, *snapshot) error) error {
	if st.node == "" {
		return nil
	}
	snap := st.s.snaps.get(st.node)
	if snap == nil {
		return nil
	}
	for i := range typeURLs {
		if !st.pending(i, snap) || st.held(i, snap) {
			continue
		}
		if err := respond(i, snap); err != nil {
			return err
		}
	}
	return nil
}

// pending reports whether type i has something to send from snap.
func (st *adsStream) pending(i int, snap *snapshot) bool {
	t := &st.types[i]
	return t.subscribed && !t.awaiting && (t.dirty || len(t.fresh) > 0 || t.sent != snap.versions[i])
}

// dependsOn lists, by type index, the types whose snapshot version a type
// waits for (the xDS make-before-break order: CDS first, EDS after the
// CDS that names its clusters, LDS after CDS and EDS, RDS after LDS).
// Secrets wait for nothing.
var dependsOn = [numTypes][]int{
	endpointTypeIndex: {clusterTypeIndex},
	listenerTypeIndex: {clusterTypeIndex, endpointTypeIndex},
	routeTypeIndex:    {clusterTypeIndex, endpointTypeIndex, listenerTypeIndex},
}

// held reports whether type i must wait: a type it depends on is
// subscribed on the stream and the snapshot's version of it has not been
// sent yet (its response waits for the proxy's answer to the one in
// flight). A type the proxy never subscribed to holds nothing back
// (grpc-go's xDS client subscribes LDS first, CDS only once its routes
// name clusters), and a type whose version was sent holds nothing back
// whether or not the proxy ACKed it: one stream's responses arrive in
// order, so what is sent before arrives before.
func (st *adsStream) held(i int, snap *snapshot) bool {
	for _, j := range dependsOn[i] {
		if t := &st.types[j]; t.subscribed && t.sent != snap.versions[j] {
			return true
		}
	}
	return false
}

// answered handles a request's response_nonce for type i: an answer to
// the response in flight (ACK, or NACK when errorDetail is set) ends the
// wait; it reports false for a stale nonce (an answer to an earlier
// response, or none while one is in flight).
func (st *adsStream) answered(i int, nonce string) bool {
	t := &st.types[i]
	if t.nonce == 0 {
		return true // nothing sent yet: a first request
	}
	n, err := strconv.ParseUint(nonce, 10, 64)
	if err != nil || n != t.nonce {
		return false
	}
	t.awaiting = false
	return true
}

// Bounds on what a request may carry besides the subscription count
// (WithMaxSubscriptions).
const (
	// maxNameLen bounds a node id and a resource name: Weft's are a
	// Kubernetes name and namespace, or a cluster name with an FQDN (at
	// most 253 bytes) and a port. A longer one is refused, so that what
	// a stream keeps of its subscription is bounded by the name count.
	maxNameLen = 1024
	// maxDetailLen bounds the error_detail message of a NACK that is
	// logged and kept for /debug/proxies (Weft's sidecar sends at most
	// 4096 bytes).
	maxDetailLen = 4096
)

// named takes the stream's node from the first request that names one;
// an id longer than maxNameLen ends the stream (InvalidArgument).
func (st *adsStream) named(node *core.Node) error {
	id := node.GetId()
	if len(id) > maxNameLen {
		st.s.log.Warn("xds: refused request: node id too long", "bytes", len(id), "limit", maxNameLen, "delta", st.delta)
		return grpcstatus.Errorf(codes.InvalidArgument, "xds: node id of %d bytes, longer than the limit of %d", len(id), maxNameLen)
	}
	if st.node == "" && id != "" {
		st.node = id
	}
	return nil
}

// sameNode refuses (InvalidArgument) a request naming another node than
// the stream's: a stream serves one node, its first request's.
func (st *adsStream) sameNode(node *core.Node) error {
	if id := node.GetId(); id != "" && id != st.node {
		st.s.log.Warn("xds: refused request naming another node than its stream's", "proxy", st.node, "requested_node", id, "delta", st.delta)
		return grpcstatus.Errorf(codes.InvalidArgument, "xds: the stream serves node %q, a request names node %q", st.node, id)
	}
	return nil
}

// tooMany refuses (ResourceExhausted) n resource names of typeURL on the
// stream when n is over the server's limit.
func (st *adsStream) tooMany(typeURL string, n int) error {
	if limit := st.s.maxSubscriptions; limit > 0 && n > limit {
		st.s.log.Warn("xds: refused request: too many resource names", "proxy", st.node, "type", typeURL,
			"names", n, "limit", limit, "delta", st.delta)
		return grpcstatus.Errorf(codes.ResourceExhausted, "xds: %d resource names of %s on one stream, more than the limit of %d", n, typeURL, limit)
	}
	return nil
}

// longName refuses (InvalidArgument) a resource name longer than
// maxNameLen.
func (st *adsStream) longName(typeURL string, names []string) error {
	for _, n := range names {
		if len(n) > maxNameLen {
			st.s.log.Warn("xds: refused request: resource name too long", "proxy", st.node, "type", typeURL,
				"bytes", len(n), "limit", maxNameLen, "delta", st.delta)
			return grpcstatus.Errorf(codes.InvalidArgument, "xds: a resource name of %s is %d bytes long, longer than the limit of %d", typeURL, len(n), maxNameLen)
		}
	}
	return nil
}

// longVersions refuses (InvalidArgument) initial_resource_versions with
// a name or a version longer than maxNameLen: the stream keeps the map
// until the type's first response.
func (st *adsStream) longVersions(typeURL string, known map[string]string) error {
	for n, v := range known {
		if len(n) > maxNameLen || len(v) > maxNameLen {
			st.s.log.Warn("xds: refused request: initial resource version too long", "proxy", st.node, "type", typeURL,
				"bytes", max(len(n), len(v)), "limit", maxNameLen, "delta", st.delta)
			return grpcstatus.Errorf(codes.InvalidArgument, "xds: an initial_resource_versions entry of %s has %d bytes, longer than the limit of %d", typeURL, max(len(n), len(v)), maxNameLen)
		}
	}
	return nil
}

// detailMessage is a NACK's error_detail message, cut to maxDetailLen (a
// copy: the request is not kept).
func detailMessage(d *rpcstatus.Status) string {
	m := d.GetMessage()
	if len(m) <= maxDetailLen {
		return m
	}
	m = m[:maxDetailLen]
	for len(m) > 0 && !utf8.ValidString(m) {
		m = m[:len(m)-1] // a rune cut in two
	}
	return strings.Clone(m) + "..."
}

func (st *adsStream) nacked(typeURL, version string, detail *rpcstatus.Status) {
	st.s.log.Warn("proxy rejected config; it keeps its last good one", "proxy", st.node, "type", typeURL,
		"version", version, "delta", st.delta, "error_detail", detailMessage(detail))
}

// sotwRequest handles a SotW request: a request whose nonce is stale is
// ignored (the proxy's next request, answering the response in flight,
// carries its full subscription again); otherwise its resource names
// replace the type's subscription.
func (st *adsStream) sotwRequest(req *discovery.DiscoveryRequest) error {
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return grpcstatus.Error(codes.InvalidArgument, "xds: type URL is required for ADS")
	}
	if err := st.named(req.GetNode()); err != nil {
		return err
	}
	if err := st.s.cb.OnStreamRequest(st.id, req); err != nil {
		return err
	}
	if err := st.sameNode(req.GetNode()); err != nil {
		return err
	}
	i := typeIndex(typeURL)
	if i < 0 {
		return nil // a type Weft does not serve: nothing to answer
	}
	if err := st.tooMany(typeURL, len(req.GetResourceNames())); err != nil {
		return err
	}
	if err := st.longName(typeURL, req.GetResourceNames()); err != nil {
		return err
	}
	t := &st.types[i]
	if !st.answered(i, req.GetResponseNonce()) {
		return nil
	}
	if d := req.GetErrorDetail(); d != nil && t.nonce != 0 {
		st.nacked(typeURL, t.sent, d)
	}
	wildcard := false
	var names []string
	if len(req.GetResourceNames()) == 0 && !t.explicit {
		wildcard = true
	} else {
		t.explicit = true
		names = make([]string, 0, len(req.GetResourceNames()))
		for _, n := range req.GetResourceNames() {
			if n == "*" {
				wildcard = true
				continue
			}
			names = append(names, n)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if wildcard {
			names = nil
		}
	}
	if !t.subscribed || wildcard != t.wildcard || !slices.Equal(names, t.names) {
		t.subscribed, t.wildcard, t.dirty = true, wildcard, true
		if len(names) == 0 {
			names = nil
		}
		t.names = names
	}
	return nil
}

// sotwResponse builds type i's response from snap and records it as in
// flight.
func (st *adsStream) sotwResponse(i int, snap *snapshot) (*discovery.DiscoveryResponse, error) {
	t := &st.types[i]
	typeURL := typeURLs[i]
	items := snap.items[i]
	var res []*anypb.Any
	add := func(r types.ResourceWithTTL) error {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
		if err != nil {
			return fmt.Errorf("xds: marshal %s: %w", typeURL, err)
		}
		res = append(res, &anypb.Any{TypeUrl: typeURL, Value: b})
		return nil
	}
	if t.wildcard {
		res = make([]*anypb.Any, 0, len(items))
		for _, r := range items {
			if err := add(r); err != nil {
				return nil, err
			}
		}
	} else {
		for _, n := range t.names {
			if r, ok := items[n]; ok {
				if err := add(r); err != nil {
					return nil, err
				}
			}
		}
	}
	st.nonce++
	t.nonce, t.awaiting, t.sent, t.dirty = st.nonce, true, snap.versions[i], false
	return &discovery.DiscoveryResponse{
		VersionInfo: snap.versions[i], Resources: res, TypeUrl: typeURL,
		Nonce: strconv.FormatUint(st.nonce, 10),
	}, nil
}

// deltaRequest handles a delta request: its subscribe and unsubscribe
// lists always apply (they are changes, not a state); its nonce answers
// the response in flight when it is that response's.
func (st *adsStream) deltaRequest(req *discovery.DeltaDiscoveryRequest) error {
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return grpcstatus.Error(codes.InvalidArgument, "xds: type URL is required for ADS")
	}
	if err := st.named(req.GetNode()); err != nil {
		return err
	}
	if err := st.s.cb.OnStreamDeltaRequest(st.id, req); err != nil {
		return err
	}
	if err := st.sameNode(req.GetNode()); err != nil {
		return err
	}
	i := typeIndex(typeURL)
	if i < 0 {
		return nil
	}
	sub, unsub := req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe()
	if err := st.longName(typeURL, sub); err != nil {
		return err
	}
	t := &st.types[i]
	if nonce := req.GetResponseNonce(); nonce != "" && st.answered(i, nonce) {
		if d := req.GetErrorDetail(); d != nil && t.nonce != 0 {
			st.nacked(typeURL, t.sent, d)
		}
	}
	first := !t.subscribed
	if first {
		// What the proxy has from an earlier stream: compared with the
		// snapshot by the first response, then replaced by its map.
		if err := st.tooMany(typeURL, len(req.GetInitialResourceVersions())); err != nil {
			return err
		}
		if err := st.longVersions(typeURL, req.GetInitialResourceVersions()); err != nil {
			return err
		}
		t.subscribed, t.dirty = true, true
		t.known = req.GetInitialResourceVersions()
		t.wildcard = len(sub) == 0
	}
	// Sorted first, so that a long list costs no insertion into t.names
	// per name (the request is not kept: sub is reused in place).
	slices.Sort(sub)
	sub = slices.Compact(sub)
	if !first {
		// Sent whatever the proxy is thought to have: the spec asks for
		// names subscribed again too (the proxy may have dropped them).
		t.addFresh(slices.DeleteFunc(slices.Clone(sub), func(n string) bool { return n == "*" }))
	}
	add := sub[:0] // the names new to the subscription
	for _, n := range sub {
		if n == "*" {
			if !t.wildcard {
				t.wildcard, t.dirty = true, true
				if !first {
					// What the proxy has of its explicit names; on a
					// first request it is initial_resource_versions,
					// whatever it names.
					t.known = t.has()
				}
			}
			continue
		}
		if _, found := slices.BinarySearch(t.names, n); !found {
			add = append(add, n)
		}
	}
	if len(add) <= 8 {
		for _, n := range add {
			j, _ := slices.BinarySearch(t.names, n)
			t.names = slices.Insert(t.names, j, n)
		}
	} else {
		t.names = append(t.names, add...)
		slices.Sort(t.names)
	}
	if len(unsub) > 0 {
		slices.Sort(unsub)
		if _, all := slices.BinarySearch(unsub, "*"); all {
			t.wildcard = false
		}
		gone := func(n string) bool { _, found := slices.BinarySearch(unsub, n); return found }
		t.fresh = slices.DeleteFunc(t.fresh, gone)
		var covered []string
		t.names = slices.DeleteFunc(t.names, func(n string) bool {
			if !gone(n) {
				return false
			}
			if t.wildcard {
				// The proxy cannot tell whether "*" covers the name: say
				// so, with the resource or in removed_resources.
				covered = append(covered, n)
			}
			return true
		})
		t.addFresh(covered)
	}
	// Counted once the request applied (a name replacing another in one
	// request is no name more), with the names unsubscribed from under
	// "*" that wait in fresh for the type's next response: a proxy that
	// does not answer that response must not make the stream keep names
	// past the limit either. Only counted when it may be over.
	if limit := st.s.maxSubscriptions; limit > 0 && len(t.names)+len(t.fresh) > limit {
		return st.tooMany(typeURL, t.kept())
	}
	return nil
}

// kept is how many resource names the stream keeps for the type: its
// subscribed names and, in fresh, the names unsubscribed from under "*"
// (fresh holds no other name that is not subscribed).
func (t *typeStream) kept() int {
	n := len(t.names)
	for _, f := range t.fresh {
		if _, found := slices.BinarySearch(t.names, f); !found {
			n++
		}
	}
	return n
}

// addFresh adds names to fresh, which stays sorted (deltaResponse looks
// names up in it).
func (t *typeStream) addFresh(names []string) {
	if len(names) == 0 {
		return
	}
	t.fresh = append(t.fresh, names...)
	slices.Sort(t.fresh)
	t.fresh = slices.Compact(t.fresh)
}

// isFresh reports whether name was subscribed since the last response
// (fresh is sorted).
func (t *typeStream) isFresh(name string) bool {
	_, found := slices.BinarySearch(t.fresh, name)
	return found
}

// has is what the proxy holds of an explicit subscription (the known
// versions of its names that were sent), as its own map.
func (t *typeStream) has() map[string]string {
	m := make(map[string]string, len(t.names))
	for _, n := range t.names {
		if v, ok := t.known[n]; ok && !t.isFresh(n) {
			m[n] = v
		}
	}
	return m
}

// deltaResponse builds type i's delta response from snap: the resources
// in the subscription whose version the proxy does not have, and those it
// has that are gone. It returns nil when there is nothing to send (but
// always answers a type's first request on the stream and a new wildcard
// subscription: a proxy that reconnects with everything up to date
// answers that and so completes its first configuration), and records
// what the proxy has.
func (st *adsStream) deltaResponse(i int, snap *snapshot) (*discovery.DeltaDiscoveryResponse, error) {
	t := &st.types[i]
	typeURL := typeURLs[i]
	vm := snap.vmaps[i]
	if vm == nil {
		// A node whose snapshot was built for SotW streams only (a delta
		// stream joined later): hash here, once per response.
		var err error
		if vm, err = versionsOf(snap.items[i]); err != nil {
			return nil, err
		}
	}
	items := snap.items[i]
	var res []*discovery.Resource
	var removed []string
	// first: no response of the type yet on the stream; every subscribed
	// name the snapshot does not have is news to the proxy.
	first := t.nonce == 0
	send := func(name, v string) error {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(items[name].Resource)
		if err != nil {
			return fmt.Errorf("xds: marshal %s %q: %w", typeURL, name, err)
		}
		res = append(res, &discovery.Resource{Name: name, Version: v, Resource: &anypb.Any{TypeUrl: typeURL, Value: b}})
		return nil
	}
	// absent handles a subscribed name the snapshot does not have: it is
	// in removed_resources when the proxy has it (known), or when the
	// proxy has not been told yet that it does not exist (a first
	// response, or a name subscribed since the last one: fresh).
	absent := func(name string, fresh bool) {
		if _, had := t.known[name]; had || fresh || first {
			removed = append(removed, name)
		}
	}
	if t.wildcard {
		for name, v := range vm {
			if t.known[name] != v || t.isFresh(name) {
				if err := send(name, v); err != nil {
					return nil, err
				}
			}
		}
		for name := range t.known {
			if _, ok := vm[name]; !ok {
				removed = append(removed, name)
			}
		}
		// Explicit names besides "*" that do not exist, and names
		// unsubscribed from under "*" that it does not cover (fresh).
		for _, name := range t.fresh {
			if _, ok := vm[name]; !ok {
				absent(name, true)
			}
		}
		if first {
			for _, name := range t.names {
				if _, ok := vm[name]; !ok {
					absent(name, false)
				}
			}
		}
	} else {
		for _, name := range t.names {
			fresh := t.isFresh(name)
			v, ok := vm[name]
			switch {
			case !ok:
				absent(name, fresh)
			case fresh || t.known[name] != v:
				if err := send(name, v); err != nil {
					return nil, err
				}
			}
		}
	}
	reply := len(res) > 0 || len(removed) > 0 || t.dirty
	t.known, t.fresh, t.sent, t.dirty = vm, nil, snap.versions[i], false
	if !reply {
		return nil, nil
	}
	slices.Sort(removed)
	removed = slices.Compact(removed) // the wildcard's and an explicit name's
	st.nonce++
	t.nonce, t.awaiting = st.nonce, true
	return &discovery.DeltaDiscoveryResponse{
		SystemVersionInfo: snap.versions[i], Resources: res, RemovedResources: removed, TypeUrl: typeURL,
		Nonce: strconv.FormatUint(st.nonce, 10),
	}, nil
}

// versionsOf is a delta version map of items: the hash of each one's
// deterministic wire form, as hashCache's for all but routes.
func versionsOf(items map[string]types.ResourceWithTTL) (map[string]string, error) {
	m := make(map[string]string, len(items))
	for name, r := range items {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
		if err != nil {
			return nil, fmt.Errorf("xds: hash %q: %w", name, err)
		}
		sum := sha256.Sum256(b)
		m[name] = hex.EncodeToString(sum[:])
	}
	return m, nil
}
