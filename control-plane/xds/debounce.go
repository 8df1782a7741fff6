package xds

import (
	"context"
	"time"
)

// debouncer coalesces bursts of events: after an event it waits until no
// new event has come for delay, but never longer than maxDelay after the
// first event of the burst, then calls push once. push runs on Run's
// goroutine; events that arrive meanwhile start the next burst.
//
// It uses the real clock; its tests run in a testing/synctest bubble, whose
// fake clock makes them exact and instant.
type debouncer struct {
	delay    time.Duration
	maxDelay time.Duration
	push     func()
}

// run reads events until ctx is done.
func (d *debouncer) run(ctx context.Context, events <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	var first, last time.Time
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-events:
			now := time.Now()
			if !pending {
				pending, first = true, now
			}
			last = now
			due := last.Add(d.delay)
			if limit := first.Add(d.maxDelay); d.maxDelay > 0 && limit.Before(due) {
				due = limit
			}
			timer.Reset(due.Sub(now))
		case <-timer.C:
			pending = false
			d.push()
		}
	}
}
