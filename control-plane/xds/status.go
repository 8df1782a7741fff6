package xds

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// ProxyStatus is one connected proxy as GET /debug/proxies lists it.
type ProxyStatus struct {
	// ID is the xDS node id, <workload>.<namespace>.
	ID string `json:"id"`
	// ConnectedAt is when its first open stream sent its node.
	ConnectedAt time.Time `json:"connectedAt"`
	// Versions by type URL.
	Versions map[string]TypeStatus `json:"versions"`
}

// TypeStatus is a proxy's state for one resource type.
type TypeStatus struct {
	// Acked is the last version the proxy ACKed ("" before the first ACK).
	Acked string `json:"acked"`
	// Nack is the error_detail message of the proxy's last NACK; it is
	// cleared by a later ACK.
	Nack string `json:"nack,omitempty"`
	// Sent is the last version sent to the proxy.
	Sent string `json:"sent,omitempty"`
}

// streamKey names a stream: the SotW and the delta server count stream ids
// separately.
type streamKey struct {
	delta bool
	id    int64
}

type sent struct{ nonce, version string }

// Per-stream and per-proxy state is kept in arrays by type (typeURLs'
// order), not maps keyed by type URL: it is memory per proxy. A type URL
// the server does not serve has no status.

type streamState struct {
	ctx  context.Context // the stream's: ends when it closes
	node string
	sent [numTypes]sent // by type: the last response
	// wake is the stream's (attach): signalled when its node's snapshot
	// changes; nil for a stream nobody serves (tests).
	wake chan struct{}
}

type proxyState struct {
	// streams are the node's open streams.
	streams     []*streamState
	deltaSeen   bool // some stream of the node is (or was) a delta stream
	connectedAt time.Time
	types       [numTypes]TypeStatus
	seen        uint8 // typeBit of each type in types with a status
	// connecting: the node holds an admission slot until it answered
	// its first configuration (admit.go); nil otherwise.
	connecting *connecting
}

// status implements the stream callbacks (ads.go): it follows which
// nodes are connected (calling connect when a node's first stream names it,
// disconnect when its last stream closes) and records, per node and type,
// what was sent, ACKed and NACKed. Callbacks run on the streams' goroutines;
// connect and disconnect are called without status's lock held, before the
// stream goes on with the request, so a node's snapshot exists before its
// first response; connect gets the stream's context and may block (admission).
// While a node is admitted (admit), status follows which types it subscribed
// to and answered, and releases its slot when it has answered them all or
// its last stream closes.
type status struct {
	now        func() time.Time
	connect    func(ctx context.Context, node string)
	disconnect func(node string)
	// obs gets responses and NACKs, acked every ACK (set before the first
	// stream; never called with mu held).
	obs   Observer
	acked func(node, typeURL, version string)

	// names shares the resource names of requests (intern.go).
	names *interner

	mu      sync.Mutex
	streams map[streamKey]*streamState
	proxies map[string]*proxyState
}

var _ callbacks = (*status)(nil)

func newStatus(now func() time.Time, connect func(context.Context, string), disconnect func(string)) *status {
	return &status{
		now: now, connect: connect, disconnect: disconnect,
		obs: nopObserver{}, acked: func(string, string, string) {},
		names:   newInterner(),
		streams: map[streamKey]*streamState{},
		proxies: map[string]*proxyState{},
	}
}

// Proxies lists the connected proxies sorted by id.
func (s *status) Proxies() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for id, p := range s.proxies {
		ps := ProxyStatus{ID: id, ConnectedAt: p.connectedAt, Versions: map[string]TypeStatus{}}
		for i, typ := range typeURLs {
			if p.seen&(1<<i) != 0 {
				ps.Versions[typ] = p.types[i]
			}
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// delta reports whether a delta stream of the node has named it (only
// those use the snapshots' version maps).
func (s *status) delta(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[node]
	return p != nil && p.deltaSeen
}

// isConnected reports whether some open stream has named node.
func (s *status) isConnected(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxies[node] != nil
}

// connected is the number of connected proxies.
func (s *status) connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.proxies)
}

// attach sets the channel that wakes stream k's handler when its node's
// snapshot changes (wake).
func (s *status) attach(k streamKey, wake chan struct{}) {
	s.mu.Lock()
	if st := s.streams[k]; st != nil {
		st.wake = wake
	}
	s.mu.Unlock()
}

// wake signals every open stream of node, without blocking: the node has a
// new snapshot.
func (s *status) wake(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[node]
	if p == nil {
		return
	}
	for _, st := range p.streams {
		if st.wake != nil {
			select {
			case st.wake <- struct{}{}:
			default: // already signalled
			}
		}
	}
}

func (s *status) open(ctx context.Context, k streamKey) error {
	s.mu.Lock()
	s.streams[k] = &streamState{ctx: ctx}
	s.mu.Unlock()
	return nil
}

func (s *status) closed(k streamKey) {
	s.mu.Lock()
	st := s.streams[k]
	delete(s.streams, k)
	gone := ""
	var release func()
	if st != nil && st.node != "" {
		if p := s.proxies[st.node]; p != nil {
			p.streams = slices.DeleteFunc(p.streams, func(o *streamState) bool { return o == st })
			if len(p.streams) == 0 {
				delete(s.proxies, st.node)
				gone = st.node
				if p.connecting != nil {
					release = p.connecting.release
				}
			}
		}
	}
	s.mu.Unlock()
	if release != nil {
		release()
	}
	if gone != "" {
		s.disconnect(gone)
	}
}

// request records a request: the node of a new stream, and an ACK or NACK
// of the response whose nonce it carries. A SotW ACK carries that
// response's version too (version_info); a SotW request with its nonce,
// no error_detail and another version answers it without accepting it
// (Weft's sidecar changes its subscription so while it holds a response
// that names clusters it has not got yet). Delta requests carry no
// version: an answer without error_detail is an ACK.
func (s *status) request(k streamKey, node *core.Node, typeURL, nonce, version, errorDetail string, nack bool) {
	s.mu.Lock()
	st := s.streams[k]
	if st == nil {
		s.mu.Unlock()
		return
	}
	joined := ""
	if st.node == "" && node.GetId() != "" {
		st.node = node.GetId()
		p := s.proxies[st.node]
		if p == nil {
			p = &proxyState{connectedAt: s.now()}
			s.proxies[st.node] = p
			joined = st.node
		}
		p.streams = append(p.streams, st)
		p.deltaSeen = p.deltaSeen || k.delta
	}
	ackedVersion, nacked := "", false
	answered := false
	if nonce != "" && st.node != "" {
		if i := typeIndex(typeURL); i >= 0 && st.sent[i].nonce == nonce {
			last := st.sent[i]
			answered = true
			ts := s.typeStatus(st.node, typeURL)
			switch {
			case nack:
				ts.Nack, nacked = errorDetail, true
			case k.delta || version == last.version:
				ts.Acked, ts.Nack = last.version, ""
				ackedVersion = last.version
			}
		}
	}
	release := s.progress(st.node, typeURL, answered)
	nodeID, ctx := st.node, st.ctx
	s.mu.Unlock()
	if release != nil {
		release()
	}
	if joined != "" {
		s.connect(ctx, joined)
		// The joining request subscribed to its type too.
		s.mu.Lock()
		release = s.progress(joined, typeURL, false)
		s.mu.Unlock()
		if release != nil {
			release()
		}
	}
	switch {
	case nacked:
		s.obs.Nacked(typeURL)
	case ackedVersion != "":
		s.acked(nodeID, typeURL, ackedVersion)
	}
}

// admit records that node holds an admission slot (release frees it)
// until it has answered the first response of each type in want (the
// non-empty types of its first snapshot) it subscribes to. With nothing to
// wait for, or when the node is gone already, the slot is freed at once.
func (s *status) admit(node string, want uint8, release func()) {
	s.mu.Lock()
	p := s.proxies[node]
	if p != nil && want != 0 {
		if p.connecting != nil {
			// Cannot happen (one connect per join); free the older slot.
			defer p.connecting.release()
		}
		p.connecting = &connecting{want: want, release: release}
		release = nil
	}
	s.mu.Unlock()
	if release != nil {
		release()
	}
}

// progress notes that node requested typeURL (and answered its last
// response when answered) and returns the node's admission release when
// that completes its first configuration; s.mu is held.
func (s *status) progress(node, typeURL string, answered bool) (release func()) {
	p := s.proxies[node]
	if p == nil || p.connecting == nil {
		return nil
	}
	c := p.connecting
	c.subscribed |= typeBit(typeURL)
	if answered {
		c.answered |= typeBit(typeURL)
	}
	if !c.done() {
		return nil
	}
	p.connecting = nil
	return c.release
}

func (s *status) response(k streamKey, typeURL, nonce, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		return
	}
	i := typeIndex(typeURL)
	if i < 0 {
		return
	}
	st.sent[i] = sent{nonce: nonce, version: version}
	if st.node != "" {
		s.typeStatus(st.node, typeURL).Sent = version
	}
}

// typeStatus returns the proxy's status for a type; s.mu is held.
func (s *status) typeStatus(node, typeURL string) *TypeStatus {
	p := s.proxies[node]
	i := typeIndex(typeURL)
	if p == nil || i < 0 {
		return &TypeStatus{}
	}
	p.seen |= 1 << i
	return &p.types[i]
}

// OnStreamOpen implements callbacks.
func (s *status) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return s.open(ctx, streamKey{id: id})
}

// OnStreamClosed implements callbacks.
func (s *status) OnStreamClosed(id int64, _ *core.Node) { s.closed(streamKey{id: id}) }

// OnStreamRequest implements callbacks. The request's resource names are
// replaced with shared copies (intern.go).
func (s *status) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	s.names.names(req.ResourceNames)
	s.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(),
		detailMessage(req.GetErrorDetail()), req.GetErrorDetail() != nil)
	return nil
}

// OnStreamResponse implements callbacks.
func (s *status) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.response(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
	s.obs.ResponseSent(resp.GetTypeUrl(), false, proto.Size(resp))
}

// OnDeltaStreamOpen implements callbacks.
func (s *status) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	return s.open(ctx, streamKey{delta: true, id: id})
}

// OnDeltaStreamClosed implements callbacks.
func (s *status) OnDeltaStreamClosed(id int64, _ *core.Node) {
	s.closed(streamKey{delta: true, id: id})
}

// OnStreamDeltaRequest implements callbacks. Only a stream's first
// request is sure to carry the node. The names it subscribes to are
// replaced with shared copies (intern.go).
func (s *status) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	s.names.names(req.ResourceNamesSubscribe)
	s.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "",
		detailMessage(req.GetErrorDetail()), req.GetErrorDetail() != nil)
	return nil
}

// OnStreamDeltaResponse implements callbacks; the delta response's
// system_version_info is the snapshot version of its type.
func (s *status) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	s.response(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
	s.obs.ResponseSent(resp.GetTypeUrl(), true, proto.Size(resp))
}
