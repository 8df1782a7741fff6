package h1client

import (
	"context"
	"time"
)

// DefaultCancelWatchDelay is how long a request runs before its context
// is watched for cancellation (WithCancelWatchDelay).
const DefaultCancelWatchDelay = 5 * time.Millisecond

// WithCancelWatchDelay sets how long a request may be in flight before
// the client watches its context (context.AfterFunc) to abort the
// connection when it ends (default DefaultCancelWatchDelay; 0 watches
// from the start). A request that ends sooner never registers the watch:
// the proxy's request contexts are new for every request, and the watch
// made three allocations for each (the context's done channel, its
// children map, the AfterFunc's context), a tenth of a sidecar's bytes per
// request. A context that ends earlier aborts the request at the delay.
func WithCancelWatchDelay(d time.Duration) Option {
	return func(c *Client) { c.watchDelay = max(d, 0) }
}

// watch arms the cancellation watch of the request in flight on pc: at
// once without a delay, else when the connection's timer fires.
func (pc *conn) watch(ctx context.Context) {
	d := pc.hp.c.watchDelay
	if d == 0 {
		if ctx.Done() != nil {
			pc.wstop = context.AfterFunc(ctx, pc.abortFn)
		}
		return
	}
	pc.wmu.Lock()
	pc.wctx = ctx
	pc.wmu.Unlock()
	if pc.wtimer == nil {
		pc.wtimer = time.AfterFunc(d, pc.watchFire)
	} else {
		pc.wtimer.Reset(d)
	}
}

// watchFire runs on the timer's goroutine: the request is still in
// flight (wctx is set until unwatch), so its context is watched from now.
func (pc *conn) watchFire() {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	// A timer of an earlier request may fire late, once this request
	// registered already: one watch per request.
	if pc.wctx == nil || pc.wstop != nil {
		return
	}
	pc.wstop = context.AfterFunc(pc.wctx, pc.abortFn)
}

// unwatch ends the watch of the request in flight. False: its context
// ended while watched, so the abort may have set the connection's
// deadline and the connection must not be reused.
func (pc *conn) unwatch() bool {
	if pc.wtimer != nil {
		pc.wtimer.Stop()
	}
	pc.wmu.Lock()
	stop := pc.wstop
	pc.wctx, pc.wstop = nil, nil
	pc.wmu.Unlock()
	return stop == nil || stop()
}
