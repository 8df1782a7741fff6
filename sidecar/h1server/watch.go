package h1server

import (
	"context"
	"time"
)

// The client-disconnect watch. net/http starts a background read of the
// connection after every request whose body was read (and stops it after
// the response): a goroutine and a deadline dance per request. Here a
// per-connection timer arms that read only when a handler is still
// running after Server.WatchDelay (a slow upstream), so a quick
// request costs a timer Reset and Stop. The read, once armed, cancels the
// request's context when the client closes or resets the connection; a
// byte it reads (a pipelined request) goes back to the reader.

// startWatch records ex as the running exchange, with the cancel func
// of its request context, and starts the timer.
func (c *conn) startWatch(ex *exchange, cancel context.CancelFunc) {
	d := c.s.watchDelay()
	c.mu.Lock()
	c.cur, c.curCancel = ex, cancel
	c.watchOnEOF = false
	if c.watch == nil {
		c.watch = time.AfterFunc(d, c.watchFired)
	} else {
		c.watch.Reset(d)
	}
	c.mu.Unlock()
}

// stopWatch ends the watch of the exchange that just returned.
func (c *conn) stopWatch() {
	c.mu.Lock()
	c.cur, c.curCancel = nil, nil
	c.watch.Stop()
	bg := c.bgRunning
	c.mu.Unlock()
	if bg {
		c.abortBackgroundRead()
	}
}

// watchFired runs on the timer's goroutine: the handler is slow; watch
// the connection once the request body is read.
func (c *conn) watchFired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	ex := c.cur
	if ex == nil || c.hijacked || c.bgRunning {
		return
	}
	if !ex.bodyDone.Load() {
		c.watchOnEOF = true
		return
	}
	c.startBackgroundReadLocked()
}

// bodyEOF is called when ex's request body was read to its end.
func (c *conn) bodyEOF(ex *exchange) {
	ex.bodyDone.Store(true)
	c.mu.Lock()
	if c.watchOnEOF && c.cur == ex && !c.hijacked && !c.bgRunning {
		c.watchOnEOF = false
		c.startBackgroundReadLocked()
	}
	c.mu.Unlock()
}

// startBackgroundReadLocked starts the goroutine that reads one byte
// under the buffered reader, for the running exchange (c.cur); c.mu is
// held.
func (c *conn) startBackgroundReadLocked() {
	if c.cr.hasByte {
		return
	}
	c.bgRunning = true
	c.bgAborting = false
	done := make(chan struct{})
	c.bgDone = done
	cancel := c.curCancel
	_ = c.rwc.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		n, err := c.rwc.Read(c.cr.b[:])
		c.mu.Lock()
		defer c.mu.Unlock()
		if n == 1 {
			c.cr.hasByte = true
		}
		if err != nil && !c.bgAborting {
			// The client closed or reset the connection.
			c.dead = true
			cancel()
		}
		c.bgRunning = false
	}()
}

// abortBackgroundRead stops a running background read and waits for it.
func (c *conn) abortBackgroundRead() {
	c.mu.Lock()
	if !c.bgRunning {
		c.mu.Unlock()
		return
	}
	c.bgAborting = true
	done := c.bgDone
	c.mu.Unlock()
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	<-done
	_ = c.rwc.SetReadDeadline(time.Time{})
}
