package xds

import (
	"strconv"
	"sync"
	"time"
)

// Observer receives the server's metric events (the debug package turns
// them into Prometheus metrics). Its methods are called on ADS stream
// goroutines and on the pusher, so they must be cheap and safe for
// concurrent use.
type Observer interface {
	// ResponseSent: one response of typeURL (a push of that type to one
	// proxy) of the given wire size left on a SotW or delta stream.
	ResponseSent(typeURL string, delta bool, bytes int)
	// Nacked: a proxy rejected a response of typeURL.
	Nacked(typeURL string)
	// PushAcked: every proxy a push changed has ACKed the push's version of
	// every changed type (or disconnected); latency runs from the registry
	// change that started the push (the first Update since the previous
	// push; for certificate and bundle pushes, the moment they were set).
	PushAcked(latency time.Duration, proxies int)
}

// WithObserver sets the metrics observer (default: none).
func WithObserver(o Observer) Option { return func(s *Server) { s.obs = o } }

type nopObserver struct{}

func (nopObserver) ResponseSent(string, bool, int) {}
func (nopObserver) Nacked(string)                  {}
func (nopObserver) PushAcked(time.Duration, int)   {}

// typeBit is a type URL's bit in a mask over typeURLs.
func typeBit(typeURL string) uint8 {
	for i, t := range typeURLs {
		if t == typeURL {
			return 1 << i
		}
	}
	return 0
}

// ackTracker measures push latency: a push expects, of every node it
// changed, an ACK of the push's version (or a later one) for each changed
// type. It has its own lock, never held while calling out, so ACKs on
// thousands of streams do not wait for a push in progress.
type ackTracker struct {
	obs Observer
	now func() time.Time

	mu     sync.Mutex
	pushes map[uint64]*pendingPush // by push number
	nodes  map[string][]nodeWait
}

type pendingPush struct {
	seen      time.Time
	open      bool // the push is still setting snapshots
	remaining int  // nodes that have not ACKed yet
	proxies   int  // nodes the push changed
}

type nodeWait struct {
	seq  uint64
	mask uint8 // types still to be ACKed
}

func newAckTracker(obs Observer, now func() time.Time) *ackTracker {
	return &ackTracker{obs: obs, now: now, pushes: map[uint64]*pendingPush{}, nodes: map[string][]nodeWait{}}
}

// begin opens push seq, started by a change seen at seen.
func (t *ackTracker) begin(seq uint64, seen time.Time) {
	t.mu.Lock()
	t.pushes[seq] = &pendingPush{seen: seen, open: true}
	t.mu.Unlock()
}

// expect records that push seq changed the types in mask for node. A push
// nobody began (certificates, bundle) starts now and is closed already.
func (t *ackTracker) expect(node string, seq uint64, mask uint8) {
	if mask == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pushes[seq]
	if p == nil {
		p = &pendingPush{seen: t.now()}
		t.pushes[seq] = p
	}
	ws := t.nodes[node]
	for i := range ws {
		if ws[i].seq == seq {
			ws[i].mask |= mask
			return
		}
	}
	t.nodes[node] = append(ws, nodeWait{seq: seq, mask: mask})
	p.remaining++
	p.proxies++
}

// commit closes push seq: from now on its last ACK observes its latency.
func (t *ackTracker) commit(seq uint64) {
	var lat time.Duration
	n := -1
	t.mu.Lock()
	if p := t.pushes[seq]; p != nil {
		p.open = false
		if p.remaining == 0 {
			delete(t.pushes, seq)
			if p.proxies > 0 {
				lat, n = t.now().Sub(p.seen), p.proxies
			}
		}
	}
	t.mu.Unlock()
	if n > 0 {
		t.obs.PushAcked(lat, n)
	}
}

// acked records that node ACKed version of typeURL.
func (t *ackTracker) acked(node, typeURL, version string) {
	v, err := strconv.ParseUint(version, 10, 64)
	bit := typeBit(typeURL)
	if err != nil || bit == 0 {
		return
	}
	t.settle(node, func(w *nodeWait) bool {
		if w.seq <= v {
			w.mask &^= bit
		}
		return w.mask == 0
	})
}

// forget drops a node that disconnected: it no longer holds pushes back.
func (t *ackTracker) forget(node string) {
	t.settle(node, func(*nodeWait) bool { return true })
}

// settle removes the node's waits done says are settled and observes the
// pushes that thereby completed.
func (t *ackTracker) settle(node string, done func(*nodeWait) bool) {
	type obs struct {
		lat time.Duration
		n   int
	}
	var out []obs
	t.mu.Lock()
	ws := t.nodes[node]
	keep := ws[:0]
	for i := range ws {
		if !done(&ws[i]) {
			keep = append(keep, ws[i])
			continue
		}
		p := t.pushes[ws[i].seq]
		if p == nil {
			continue
		}
		p.remaining--
		if p.remaining == 0 && !p.open {
			delete(t.pushes, ws[i].seq)
			out = append(out, obs{t.now().Sub(p.seen), p.proxies})
		}
	}
	if len(keep) == 0 {
		delete(t.nodes, node)
	} else {
		t.nodes[node] = keep
	}
	t.mu.Unlock()
	for _, o := range out {
		t.obs.PushAcked(o.lat, o.n)
	}
}

// pending is the number of pushes still waiting for ACKs.
func (t *ackTracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pushes)
}
