package xds

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// admission bounds how many nodes receive their first configuration at
// once. A connecting node's first responses (its whole config: ~130 KB
// for a proxy reaching 40 services) are marshalled on its stream's
// goroutine and then held by gRPC until the client has read them; when
// thousands of proxies connect together (a rollout, a control-plane
// restart, a reconnect storm) all of them would be in memory at once, and
// the Go runtime keeps that high-water mark long after (RSS 2–4× the live
// heap at 5,000 proxies). With the gate, a node takes a slot before its
// snapshot is built and gives it back once it has answered (ACK or NACK)
// the first response of every non-empty type it subscribed to, when its
// last stream closes, or after hold at the latest (a client that never
// answers); nodes beyond the limit wait on their stream's goroutine.
//
// A burst (at least limit nodes admitted since the gate was last idle)
// ends when no node holds or waits for a slot; then burstEnded is called
// once (it must not block): the server returns the burst's freed heap to
// the OS then (WithReturnMemory), rather than leaving it to the runtime's
// scavenger, which keeps up to 1.1 × the heap goal.
type admission struct {
	sem        *semaphore.Weighted
	hold       time.Duration
	limit      int
	burstEnded func(admitted int)

	mu       sync.Mutex
	active   int // nodes waiting for or holding a slot
	admitted int // slots taken since active was last 0
}

func newAdmission(limit int, hold time.Duration, burstEnded func(admitted int)) *admission {
	return &admission{sem: semaphore.NewWeighted(int64(limit)), hold: hold, limit: limit, burstEnded: burstEnded}
}

// enter waits for a slot until ctx is done and returns its release
// function, which may be called more than once (the first call frees the
// slot); the slot is freed after a.hold anyway.
func (a *admission) enter(ctx context.Context) (release func(), err error) {
	a.mu.Lock()
	a.active++
	a.mu.Unlock()
	if err := a.sem.Acquire(ctx, 1); err != nil {
		a.leave(false)
		return nil, fmt.Errorf("xds: waiting to send a first configuration: %w", err)
	}
	var once sync.Once
	free := func() {
		once.Do(func() {
			a.sem.Release(1)
			a.leave(true)
		})
	}
	t := time.AfterFunc(a.hold, free)
	release = func() {
		t.Stop()
		free()
	}
	return release, nil
}

// leave counts a node out of the gate (admitted: it held a slot) and
// reports the end of a burst.
func (a *admission) leave(admitted bool) {
	a.mu.Lock()
	a.active--
	if admitted {
		a.admitted++
	}
	n := a.admitted
	idle := a.active == 0
	if idle {
		a.admitted = 0
	}
	a.mu.Unlock()
	if idle && n >= a.limit && a.burstEnded != nil {
		a.burstEnded(n)
	}
}

// connecting is a node's progress through its first configuration while
// it holds an admission slot (status keeps it, under status's lock).
type connecting struct {
	want       uint8 // types with resources in the node's first snapshot
	subscribed uint8 // types the node requested
	answered   uint8 // types whose response the node ACKed or NACKed
	release    func()
}

// done reports whether the node answered every non-empty type it
// subscribed to (and subscribed to one at least).
func (c *connecting) done() bool {
	sub := c.subscribed & c.want
	return sub != 0 && sub&^c.answered == 0
}
