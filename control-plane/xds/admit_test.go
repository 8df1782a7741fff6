package xds

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/api/meshconfig"
)

// TestAdmissionHoldsSlotUntilFirstConfigAnswered drives the status
// callbacks as go-control-plane's stream goroutines would: with one slot, a
// connecting node holds it until it has answered (ACK or NACK) every
// non-empty type it subscribed to, in the order an Envoy-like client
// subscribes (CDS and LDS, then EDS after its CDS); a second node waits for
// the slot on its stream and gets it then; a closed stream frees it; a
// node with nothing to send (no workload) does not keep it.
func TestAdmissionHoldsSlotUntilFirstConfigAnswered(t *testing.T) {
	s := New(meshconfig.Default(), WithMaxConnecting(1))
	s.Update(parse(t, replicas()))
	s.Push()
	free := func() bool {
		t.Helper()
		if !s.admit.sem.TryAcquire(1) {
			return false
		}
		s.admit.sem.Release(1)
		return true
	}
	ctx := t.Context()
	a := streamKey{id: 1}
	if err := s.status.open(ctx, a); err != nil {
		t.Fatal(err)
	}
	s.status.request(a, &core.Node{Id: "api-0.b"}, resource.ClusterType, "", "", "", false)
	if free() {
		t.Fatal("slot free right after api-0.b joined")
	}
	s.status.response(a, resource.ClusterType, "1", "1")
	s.status.request(a, nil, resource.ListenerType, "", "", "", false)
	s.status.response(a, resource.ListenerType, "2", "1")

	// The second node waits for the slot on its own stream.
	b := streamKey{id: 2}
	if err := s.status.open(ctx, b); err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		s.status.request(b, &core.Node{Id: "api-1.b"}, resource.ClusterType, "", "", "", false)
	}()

	steps := []struct {
		what           string
		typeURL, nonce string
	}{
		{what: "ACK of CDS", typeURL: resource.ClusterType, nonce: "1"},
		{what: "EDS subscription", typeURL: resource.EndpointType},
		{what: "ACK of LDS (EDS not answered)", typeURL: resource.ListenerType, nonce: "2"},
		{what: "a stale nonce", typeURL: resource.EndpointType, nonce: "9"},
	}
	for _, st := range steps {
		s.status.request(a, nil, st.typeURL, st.nonce, "", "", false)
		select {
		case <-joined:
			t.Fatalf("api-1.b got the slot after api-0.b's %s", st.what)
		default:
		}
		s.mu.Lock()
		_, built := s.nodes["api-1.b"]
		s.mu.Unlock()
		if built {
			t.Fatalf("api-1.b's snapshot built while api-0.b holds the only slot (after %s)", st.what)
		}
	}
	// A NACK answers too: api-0.b is done, api-1.b gets the slot.
	s.status.response(a, resource.EndpointType, "3", "1")
	s.status.request(a, nil, resource.EndpointType, "3", "", "bad endpoint", true)
	<-joined
	if free() {
		t.Fatal("slot free while api-1.b has not answered")
	}
	// api-1.b's stream closes: its slot is freed.
	s.status.closed(b)
	if !free() {
		t.Fatal("slot still held after api-1.b's stream closed")
	}

	// A node id without a workload has nothing to wait for.
	c := streamKey{id: 3}
	if err := s.status.open(ctx, c); err != nil {
		t.Fatal(err)
	}
	s.status.request(c, &core.Node{Id: "ghost.nowhere"}, resource.ClusterType, "", "", "", false)
	if !free() {
		t.Fatal("slot held by a node with an empty snapshot")
	}
}

// TestAdmissionWaitEndsWithStream: a node waiting for a slot whose stream
// ends goes on without one (and does not take a slot later).
func TestAdmissionWaitEndsWithStream(t *testing.T) {
	s := New(meshconfig.Default(), WithMaxConnecting(1))
	s.Update(parse(t, replicas()))
	s.Push()
	a := streamKey{id: 1}
	if err := s.status.open(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	s.status.request(a, &core.Node{Id: "api-0.b"}, resource.ClusterType, "", "", "", false)
	ctx, cancel := context.WithCancel(t.Context())
	b := streamKey{id: 2}
	if err := s.status.open(ctx, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	s.status.request(b, &core.Node{Id: "api-1.b"}, resource.ClusterType, "", "", "", false) // returns: ctx is done
	s.mu.Lock()
	_, built := s.nodes["api-1.b"]
	s.mu.Unlock()
	if !built {
		t.Fatal("api-1.b got no snapshot after its wait ended")
	}
	s.status.closed(b)
	s.status.closed(a)
	if !s.admit.sem.TryAcquire(1) {
		t.Fatal("slot not freed after both streams closed")
	}
}

// TestAdmissionWaitsForFirstState: a node that joins before the first
// registry state (a restarted control plane) waits for it, then takes a
// slot like any other, instead of getting its snapshot in the first push
// together with every other early node.
func TestAdmissionWaitsForFirstState(t *testing.T) {
	s := New(meshconfig.Default(), WithMaxConnecting(1))
	a := streamKey{id: 1}
	if err := s.status.open(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		s.status.request(a, &core.Node{Id: "api-0.b"}, resource.ClusterType, "", "", "", false)
	}()
	// Registered by status, then in nodeConnected: waiting for the state.
	waitFor(t, "api-0.b registered", func() bool { return s.Connected() == 1 })
	s.Update(parse(t, replicas()))
	s.mu.Lock()
	_, built := s.nodes["api-0.b"]
	s.mu.Unlock()
	select {
	case <-joined:
		built = true
	default:
	}
	if built {
		t.Fatal("api-0.b joined before the first state was pushed")
	}
	s.Push()
	<-joined
	if s.admit.sem.TryAcquire(1) {
		t.Fatal("api-0.b got its first snapshot without a slot")
	}
	if s.snaps.get("api-0.b") == nil {
		t.Fatal("api-0.b has no snapshot")
	}
}

// TestAdmissionBurstEnd: the end of a burst (at least limit nodes admitted,
// then none waiting or holding a slot) is reported once, with the number
// admitted; fewer nodes are no burst; a wait that ends without a slot
// counts out but not as admitted.
func TestAdmissionBurstEnd(t *testing.T) {
	var ended []int
	a := newAdmission(2, time.Hour, func(n int) { ended = append(ended, n) })
	ctx := t.Context()
	enter := func() func() {
		t.Helper()
		r, err := a.enter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := enter()
	r1()
	if len(ended) != 0 {
		t.Fatalf("one node reported as a burst: %v", ended)
	}
	r1, r2 := enter(), enter()
	// A third waits for a slot; the wait is cut.
	cctx, cancel := context.WithCancel(ctx)
	waited := make(chan error)
	go func() {
		_, err := a.enter(cctx)
		waited <- err
	}()
	cancel()
	if err := <-waited; err == nil {
		t.Fatal("enter returned a slot after its context ended")
	}
	r1()
	r1() // twice: frees once
	if len(ended) != 0 {
		t.Fatalf("burst reported while a node holds a slot: %v", ended)
	}
	r3 := enter()
	r2()
	r3()
	if len(ended) != 1 || ended[0] != 3 {
		t.Fatalf("burst ends reported %v, want [3]", ended)
	}
	if !a.sem.TryAcquire(2) {
		t.Fatal("slots not all free")
	}
}

// TestRunReturnsMemoryAfterBurst: Run calls the WithReturnMemory function
// when a connect burst ends.
func TestRunReturnsMemoryAfterBurst(t *testing.T) {
	returned := make(chan struct{}, 1)
	s := New(meshconfig.Default(), WithMaxConnecting(1), WithReturnMemory(func() { returned <- struct{}{} }))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	r, err := s.admit.enter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r()
	<-returned
	cancel()
	<-done
}
