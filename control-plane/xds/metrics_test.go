package xds

import (
	"context"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/api/meshconfig"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	sent   map[string]int // responses by type
	bytes  map[string]int
	nacks  map[string]int
	pushes []int // proxies of each completed push
	lat    []time.Duration
}

func newRecorder() *recorder {
	return &recorder{sent: map[string]int{}, bytes: map[string]int{}, nacks: map[string]int{}}
}

func (r *recorder) ResponseSent(typeURL string, _ bool, n int) {
	r.mu.Lock()
	r.sent[typeURL]++
	r.bytes[typeURL] += n
	r.mu.Unlock()
}

func (r *recorder) Nacked(typeURL string) {
	r.mu.Lock()
	r.nacks[typeURL]++
	r.mu.Unlock()
}

func (r *recorder) PushAcked(lat time.Duration, proxies int) {
	r.mu.Lock()
	r.pushes = append(r.pushes, proxies)
	r.lat = append(r.lat, lat)
	r.mu.Unlock()
}

func (r *recorder) snapshot() (sent, nacks map[string]int, pushes []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent, nacks = map[string]int{}, map[string]int{}
	for k, v := range r.sent {
		sent[k] = v
	}
	for k, v := range r.nacks {
		nacks[k] = v
	}
	return sent, nacks, append([]int(nil), r.pushes...)
}

func startObservedServer(t *testing.T, obs Observer) (*Server, *grpc.ClientConn) {
	t.Helper()
	return startServerWith(t, WithObserver(obs))
}

func TestMetricsMove(t *testing.T) {
	rec := newRecorder()
	s, cc := startObservedServer(t, rec)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.Update(parse(t, meshYAML))
	s.Push()

	if got := s.Connected(); got != 0 {
		t.Fatalf("Connected() = %d before any stream, want 0", got)
	}
	orderCtx, orderGone := context.WithCancel(ctx)
	defer orderGone()
	order := newADSClient(t, orderCtx, cc, "order-1.shop")
	order.subscribe()
	payment := newADSClient(t, ctx, cc, "payment-1.shop")
	payment.subscribe()
	waitFor(t, "2 connected", func() bool { return s.Connected() == 2 })
	sent, _, _ := rec.snapshot()
	for _, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		if sent[typ] != 2 {
			t.Errorf("responses of %s = %d, want 2 (one per proxy)", typ, sent[typ])
		}
	}

	// An endpoint change: one EDS response per proxy, and the push is
	// observed once both proxies ACKed it, not before.
	s.Update(parse(t, meshYAML+payment2))
	s.Push()
	oe := order.recv(resource.EndpointType)
	pe := payment.recv(resource.EndpointType)
	order.ack(oe, namesOf(t, oe)...)
	if _, _, pushes := rec.snapshot(); len(pushes) != 0 {
		// The node's ACK travels asynchronously; give it a moment to be
		// (wrongly) counted before checking.
		t.Fatalf("push observed after one of two ACKs: %v", pushes)
	}
	time.Sleep(50 * time.Millisecond)
	if _, _, pushes := rec.snapshot(); len(pushes) != 0 {
		t.Fatalf("push observed after one of two ACKs: %v", pushes)
	}
	payment.ack(pe, namesOf(t, pe)...)
	waitFor(t, "push observed", func() bool { _, _, p := rec.snapshot(); return len(p) == 1 })
	sent, _, pushes := rec.snapshot()
	if pushes[0] != 2 {
		t.Errorf("push covered %d proxies, want 2", pushes[0])
	}
	if sent[resource.EndpointType] != 4 || sent[resource.ClusterType] != 2 {
		t.Errorf("responses = %v, want EDS 4 and CDS 2", sent)
	}
	rec.mu.Lock()
	if rec.bytes[resource.EndpointType] <= 0 || rec.lat[0] <= 0 {
		t.Errorf("bytes %d, latency %v: want both > 0", rec.bytes[resource.EndpointType], rec.lat[0])
	}
	rec.mu.Unlock()

	// A NACK is counted by type.
	s.Update(parse(t, meshYAML))
	s.Push()
	oe = order.recv(resource.EndpointType)
	order.send(&discovery.DiscoveryRequest{
		TypeUrl: resource.EndpointType, VersionInfo: "2", ResponseNonce: oe.GetNonce(),
		ResourceNames: namesOf(t, oe), ErrorDetail: &rpcstatus.Status{Message: "bad"},
	})
	waitFor(t, "NACK counted", func() bool { _, n, _ := rec.snapshot(); return n[resource.EndpointType] == 1 })

	// A proxy that leaves no longer holds the push back: payment ACKs, order
	// (which NACKed) disconnects, and the push completes.
	pe = payment.recv(resource.EndpointType)
	payment.ack(pe, namesOf(t, pe)...)
	time.Sleep(50 * time.Millisecond)
	if _, _, p := rec.snapshot(); len(p) != 1 {
		t.Fatalf("push completed while order has neither ACKed nor left: %v", p)
	}
	orderGone()
	waitFor(t, "push completed after disconnect", func() bool { _, _, p := rec.snapshot(); return len(p) == 2 })
	waitFor(t, "1 connected", func() bool { return s.Connected() == 1 })
	if n := s.acks.pending(); n != 0 {
		t.Errorf("%d pushes still pending", n)
	}
}

func TestAckTrackerLaterVersionSettlesEarlierPush(t *testing.T) {
	rec := newRecorder()
	now := time.Unix(0, 0)
	tr := newAckTracker(rec, func() time.Time { return now })
	tr.begin(1, now)
	tr.expect("a", 1, typeBit(resource.EndpointType)|typeBit(resource.ClusterType))
	tr.commit(1)
	tr.begin(2, now.Add(time.Second))
	tr.expect("a", 2, typeBit(resource.EndpointType))
	tr.commit(2)
	now = now.Add(3 * time.Second)
	tr.acked("a", resource.EndpointType, "2") // settles EDS of both
	if _, _, p := rec.snapshot(); len(p) != 1 {
		t.Fatalf("after EDS v2: %d pushes observed, want 1 (push 2)", len(p))
	}
	tr.acked("a", resource.ClusterType, "1")
	_, _, p := rec.snapshot()
	if len(p) != 2 || tr.pending() != 0 {
		t.Fatalf("after CDS v1: %d observed, %d pending; want 2, 0", len(p), tr.pending())
	}
	if rec.lat[0] != 2*time.Second || rec.lat[1] != 3*time.Second {
		t.Errorf("latencies %v, want [2s 3s]", rec.lat)
	}
	tr.acked("a", resource.ClusterType, "not a number") // ignored
}

// ackingStore is a snapshot store whose proxies ACK every type of a new
// snapshot before it is published: the fastest sidecar possible (under
// load, a real one can be that fast relative to the pusher).
type ackingStore struct {
	snapshotStore
	acked func(node, typeURL, version string)
}

func (c ackingStore) set(node string, snap *snapshot) {
	c.snapshotStore.set(node, snap)
	for i, typ := range typeURLs {
		c.acked(node, typ, snap.versions[i])
	}
}

// TestPushCompletesWhenACKedDuringSetSnapshot: an ACK that arrives while
// the push is still setting the node's snapshot counts (the push used to
// record what it expects only after SetSnapshot, lose such an ACK and
// never report the push complete: the "delta push never fully ACKed" bug).
func TestPushCompletesWhenACKedDuringSetSnapshot(t *testing.T) {
	rec := newRecorder()
	s := New(meshconfig.Default(), WithObserver(rec))
	s.snaps = ackingStore{snapshotStore: s.snaps, acked: s.acks.acked}
	s.Update(parse(t, meshYAML))
	s.Push()
	s.nodeConnected(context.Background(), "order-1.shop")
	s.nodeConnected(context.Background(), "payment-1.shop")
	for i, mesh := range []string{meshYAML + payment2, meshYAML} {
		s.Update(parse(t, mesh))
		s.Push()
		if _, _, p := rec.snapshot(); len(p) != i+1 || p[i] != 2 {
			t.Fatalf("push %d: observed pushes %v, want %d, the last of 2 proxies", i, p, i+1)
		}
		if n := s.PendingPushes(); n != 0 {
			t.Fatalf("push %d: %d pushes pending, want 0", i, n)
		}
	}
}

// TestUpdateDoesNotWaitForPush: while a push holds the build lock (a slow
// push under load), Update still returns at once, and Ready does not wait
// either, so the registry keeps reading and health checks keep answering.
func TestUpdateDoesNotWaitForPush(t *testing.T) {
	s := New(meshconfig.Default())
	st := parse(t, meshYAML)
	s.mu.Lock() // a push in progress
	done := make(chan struct{})
	go func() {
		s.Update(st)
		_ = s.Ready()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.mu.Unlock()
		t.Fatal("Update or Ready waited for the build lock")
	}
	s.mu.Unlock()
	s.Push()
	if !s.Ready() {
		t.Error("not ready after the push")
	}
}
