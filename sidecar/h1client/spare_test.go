package h1client

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// closeConn records Close; nothing else of it is used while it is idle.
type closeConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *closeConn) Close() error {
	c.closed.Store(true)
	return nil
}

// pool puts one idle connection per entry of ago into a host pool of c
// (oldest first), each idle for that long.
func pool(t *testing.T, c *Client, ago ...time.Duration) (*hostPool, []*closeConn) {
	t.Helper()
	hp := c.host("peer:1")
	t.Cleanup(hp.closeIdle)
	var ncs []*closeConn
	for range ago {
		nc := &closeConn{}
		hp.put(c.newConn(hp, nc))
		ncs = append(ncs, nc)
	}
	now := time.Now()
	hp.mu.Lock()
	for i, d := range ago {
		hp.idle[i].idleAt = now.Add(-d)
	}
	hp.mu.Unlock()
	return hp, ncs
}

func closedOf(ncs []*closeConn) []bool {
	out := make([]bool, len(ncs))
	for i, nc := range ncs {
		out[i] = nc.closed.Load()
	}
	return out
}

// TestSpareIdleTimeout: past the spare timeout the idle connections other
// than the most recently used one are closed; that one stays for the idle
// timeout. Without the option every connection stays for the idle timeout.
func TestSpareIdleTimeout(t *testing.T) {
	const spare, idle = time.Minute, time.Hour
	for _, tc := range []struct {
		name       string
		spare      time.Duration
		ago        []time.Duration // oldest first
		wantClosed []bool
	}{
		{"all past the spare timeout", spare, []time.Duration{3 * spare, 2 * spare, 2 * spare}, []bool{true, true, false}},
		{"some within it", spare, []time.Duration{3 * spare, spare / 2, spare / 4}, []bool{true, false, false}},
		{"the last one past the idle timeout", spare, []time.Duration{3 * idle, 2 * idle}, []bool{true, true}},
		{"one connection stays for the idle timeout", spare, []time.Duration{2 * spare}, []bool{false}},
		{"no spare timeout", 0, []time.Duration{3 * spare, 2 * spare, 2 * spare}, []bool{false, false, false}},
		{"a spare timeout longer than the idle timeout", 2 * idle, []time.Duration{idle + spare, spare}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tcpDial, WithIdleTimeout(idle), WithSpareIdleTimeout(tc.spare))
			hp, ncs := pool(t, c, tc.ago...)
			hp.expire()
			got := closedOf(ncs)
			for i := range got {
				if got[i] != tc.wantClosed[i] {
					t.Fatalf("closed %v, want %v", got, tc.wantClosed)
				}
			}
			hp.mu.Lock()
			defer hp.mu.Unlock()
			open := 0
			for _, w := range tc.wantClosed {
				if !w {
					open++
				}
			}
			if len(hp.idle) != open || hp.armed != (open > 0) {
				t.Fatalf("%d idle, armed %v; want %d", len(hp.idle), hp.armed, open)
			}
		})
	}
}

// TestSpareIdleTimerArming: the pool's timer is due when the oldest idle
// connection reaches its limit: the idle timeout while it is alone, the
// spare timeout once a more recent one is pooled.
func TestSpareIdleTimerArming(t *testing.T) {
	const spare, idle = time.Minute, time.Hour
	c := New(tcpDial, WithIdleTimeout(idle), WithSpareIdleTimeout(spare))
	hp := c.host("peer:1")
	t.Cleanup(hp.closeIdle)
	first := c.newConn(hp, &closeConn{})
	hp.put(first)
	hp.mu.Lock()
	if !hp.armed || !hp.due.Equal(first.idleAt.Add(idle)) {
		t.Errorf("one idle connection: armed %v, due %v after it went idle, want %v", hp.armed, hp.due.Sub(first.idleAt), idle)
	}
	hp.mu.Unlock()
	hp.put(c.newConn(hp, &closeConn{}))
	hp.mu.Lock()
	if !hp.armed || !hp.due.Equal(first.idleAt.Add(spare)) {
		t.Errorf("two idle connections: armed %v, due %v after the first went idle, want %v", hp.armed, hp.due.Sub(first.idleAt), spare)
	}
	hp.mu.Unlock()
}
