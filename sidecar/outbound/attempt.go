package outbound

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/filter/budget"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/outlier"
	"github.com/weftmesh/weft/sidecar/filter/retry"
	"github.com/weftmesh/weft/sidecar/filter/timeout"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/proxy"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/telemetry"
	"github.com/weftmesh/weft/sidecar/transport"
)

// Canonical forms of the resilience headers.
var (
	headerDebug      = http.CanonicalHeaderKey(mesh.HeaderDebug)
	headerAttempts   = http.CanonicalHeaderKey(mesh.HeaderAttempts)
	headerUpstream   = http.CanonicalHeaderKey(mesh.HeaderUpstream)
	headerOverloaded = http.CanonicalHeaderKey(mesh.HeaderOverloaded)
	headerTimeout    = http.CanonicalHeaderKey(mesh.HeaderTimeout)
)

// pickTries bounds the picks of one try: host_selection_retry_max_attempts
// is applied inside the picker (it avoids tried endpoints while others
// exist); these re-picks only skip endpoints whose breaker refused.
const pickTries = 3

// forward runs one request through the route's cluster: limits, route
// timeout, tries with retries and backoff, and the answer. released: the
// transport kept nothing of any try (proxy.Forwarder.Releases) and every
// response was closed, so nothing holds r once forward returns
// (h1server.Recycler); false on the rarer paths that return early.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rq *telemetry.Request, rt *router.Route) (released bool) {
	name, cl := rt.PickCluster()
	if cl == nil {
		proxy.Error(w, http.StatusServiceUnavailable, "cluster %s not found", name)
		return false
	}
	st := cl.Stats
	st.Requests.Add(1)
	rq.Note(rt.Name, name, nil, "")
	debug := false
	if v, ok := r.Header[headerDebug]; ok {
		debug = len(v) > 0 && v[0] == "1"
		delete(r.Header, headerDebug)
	}
	lim := cl.Limits
	if !lim.StartRequest() {
		st.OverflowMaxRequests.Add(1)
		overloaded(w, string(budget.MaxRequests), "cluster %s: too many requests in flight", name)
		return false
	}
	defer lim.EndRequest()

	ctx, cancel := timeout.Request(r.Context(), rt.Timeout)
	defer cancel()
	pol := rt.Retry
	var body *retry.Body
	var tee *retry.Tee // a streamed body (unknown length), sent as it is read
	replayable := false
	if pol.NumRetries > 0 {
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			tee = retry.NewTee(r.Body, rt.BufferLimit)
			defer func() { _ = tee.Close() }() // after the response is copied: stops its pump
		} else {
			var err error
			if body, replayable, err = retry.BufferBody(r, rt.BufferLimit); err != nil {
				proxy.Error(w, http.StatusBadRequest, "cannot read the request body: %v", err)
				return false
			}
		}
	}
	// On the stack with its URL: each try copies both (TryOf).
	var prep proxy.Prepared
	prep.Prepare(r)
	out := prep.Request()

	ps := h.getPickState()
	defer h.putPickState(ps)
	pc := &ps.pc
	if len(rt.Hash) > 0 {
		pc.Hash, pc.HasHash = rt.HashKey(r)
	}
	th := lim.Thresholds()
	trackConns := th.MaxConnections < th.MaxRequests
	trackPending := th.MaxPendingRequests < th.MaxRequests

	var (
		lastResp *http.Response
		lastErr  error
		lastEp   *lb.Endpoint
		lastTry  int
		retrying bool
		endTry   func()
		// lastHop is the answered try's, when the transport releases it.
		lastHop *proxy.Hop
	)
	released = true
	finish := func() {
		if endTry != nil {
			endTry()
			endTry = nil
		}
		if retrying {
			lim.EndRetry()
			retrying = false
		}
	}
	defer finish()
	for try := 1; ; try++ {
		if try > 1 {
			if _, ok := lim.StartRetry(); !ok {
				st.RetryBudgetExhausted.Add(1)
				break
			}
			retrying = true
			st.Retries.Add(1)
			if d := pol.Backoff(try - 1); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			if ctx.Err() != nil {
				h.deadline(w, r, ctx, st, debug, try-1, lastEp)
				return false
			}
		}
		pc.Now = 0
		ep, done, refused := pick(cl, pc)
		if ep == nil {
			if lastTry == 0 {
				if refused {
					rq.Flag(telemetry.FlagBreakerOpen)
				}
				st.NoHealthy.Add(1)
				overloaded(w, mesh.OverloadNoHealthy, "no healthy endpoints for %s", name)
				return false
			}
			break
		}
		if pol.AvoidPrevious {
			pc.Tried = append(pc.Tried, ep)
		}
		tookConn, reason, ok := admit(lim, out, ep, trackConns, trackPending)
		if !ok {
			done(true)
			switch reason {
			case budget.MaxConnections:
				st.OverflowMaxConnections.Add(1)
			default:
				st.OverflowMaxPendingRequests.Add(1)
			}
			overloaded(w, string(reason), "cluster %s: %s reached", name, reason)
			return false
		}
		tryCtx, tryCancel := timeout.Try(ctx, pol.PerTryTimeout)
		hop := h.fwd.TryOf(tryCtx, &prep, ep)
		req := hop.Request()
		if body != nil {
			req.Body, req.ContentLength = body.Reader(), body.Len()
			b := body // the closure captures this copy, so body stays on the stack
			req.GetBody = func() (io.ReadCloser, error) { return b.Reader(), nil }
		} else if tee != nil {
			req.Body = tee.Try(tryCtx)
		}
		st.Attempts.Add(1)
		ep.State.Begin()
		req, span := rq.StartAttempt(req, ep, try)
		rel := h.fwd.Releases(req, ep)
		released = released && rel
		start := time.Now()
		resp, err := h.fwd.SendTry(req, ep)
		now := time.Now()
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		rq.EndAttempt(span, start, status, err)
		var rtt time.Duration
		if err == nil {
			rtt = now.Sub(start)
		}
		ep.State.End(rtt, now.UnixNano())
		release(lim, tookConn, trackPending)
		endTry = tryCancel
		lastEp, lastTry = ep, try

		if err != nil {
			switch timeout.Cause(tryCtx) {
			case timeout.RouteTimeout:
				done(false)
				h.deadline(w, r, ctx, st, debug, try, ep)
				return false
			case timeout.ClientGone:
				done(true)
				return false
			case timeout.TryTimeout:
				st.PerTryTimeouts.Add(1)
			}
		}
		done(err == nil && status < 500)
		var header http.Header
		if resp != nil {
			header = resp.Header
		}
		cond := retry.ClassifyResponse(status, header, err, ep.TunnelAddr != "")
		if tee != nil && body == nil {
			body, replayable = tee.AfterFailedTry()
			if body != nil {
				// The next tries send the copy, of known length: admit
				// them as what the transport will carry them on
				// (transport.OwnConnection reads the length).
				out.ContentLength = body.Len()
			}
		}
		again := cond != 0 && try <= pol.NumRetries && pol.Retryable(r.Method, status, cond) && (replayable || cond == retry.ConnectFailure && body == nil && r.ContentLength == 0)
		if !again {
			lastResp, lastErr = resp, err
			if rel {
				lastHop = hop
			}
			break
		}
		if resp != nil {
			_ = resp.Body.Close()
		}
		if rel {
			h.fwd.Recycle(hop, resp)
		}
		finish()
		lastResp, lastErr = nil, err
		if status != 0 {
			// Keep nothing of a retried response but the fact.
			lastErr = errRetriedStatus{status}
		}
	}
	if lastResp == nil && lastErr == nil {
		// Nothing was tried (budget or no endpoint on the first retry):
		// cannot happen on the first try, which answers above.
		proxy.Error(w, http.StatusServiceUnavailable, "no endpoint for %s", name)
		return released
	}
	if debug {
		setDebug(w, lastTry, lastEp)
	}
	if lastResp != nil {
		h.fwd.WriteResponse(w, r, lastResp, lastEp, name) // closes its body
	} else if status, ok := retriedStatus(lastErr); ok {
		proxy.Error(w, status, "upstream answered %d on every try", status)
	} else {
		h.fwd.Fail(w, r, lastErr, lastEp, name)
	}
	if lastHop != nil {
		h.fwd.Recycle(lastHop, lastResp)
	}
	return released
}

// pickState is one request's picker context with room for the endpoints
// it tried. It is recycled: the picker's interface call would move a
// stack copy to the heap (two allocations per request).
type pickState struct {
	tried [4]*lb.Endpoint
	pc    lb.Context
}

// getPickState returns a pickState whose context is empty and tracks the
// tried endpoints in its own array.
func (h *Handler) getPickState() *pickState {
	ps, ok := h.picks.Get().(*pickState)
	if !ok {
		ps = new(pickState)
	}
	ps.pc = lb.Context{Tried: ps.tried[:0]}
	return ps
}

// putPickState recycles ps without keeping any endpoint reachable.
func (h *Handler) putPickState(ps *pickState) {
	ps.tried = [4]*lb.Endpoint{}
	ps.pc = lb.Context{}
	h.picks.Put(ps)
}

// errRetriedStatus stands for a response that was retried and discarded,
// when no later try got a response to return instead.
type errRetriedStatus struct{ status int }

func (e errRetriedStatus) Error() string { return "upstream status " + strconv.Itoa(e.status) }

// retriedStatus returns the status of an errRetriedStatus.
func retriedStatus(err error) (int, bool) {
	var rs errRetriedStatus
	if errors.As(err, &rs) {
		return rs.status, true
	}
	return 0, false
}

// pick chooses the try's endpoint and asks its breaker; refused reports
// that a breaker refused an endpoint it picked.
func pick(cl *router.Cluster, pc *lb.Context) (_ *lb.Endpoint, _ outlier.Done, refused bool) {
	for range pickTries {
		ep := cl.Picker.PickFor(pc)
		if ep == nil {
			return nil, nil, refused
		}
		if done, ok := cl.Host(ep).Allow(); ok {
			return ep, done, refused
		}
		refused = true
	}
	return nil, nil, refused
}

// admit applies max_connections and max_pending_requests to a try of out
// to ep. A try holds a connection of its own when the transport sends it
// on a pooled HTTP/1.1 connection (transport.OwnConnection: direct
// endpoints, HTTP/1.x over the mTLS tunnel), and otherwise shares the
// endpoint's one multiplexed HTTP/2 connection, counted once, by the first
// try in flight to it; a try is pending until its response arrives.
// Neither limit can bind when it is not below max_requests, so they are
// only tracked then.
func admit(lim *budget.Limits, out *http.Request, ep *lb.Endpoint, conns, pending bool) (tookConn bool, _ budget.Reason, _ bool) {
	if pending && !lim.StartPending() {
		return false, budget.MaxPendingRequests, false
	}
	if conns && (transport.OwnConnection(out, ep) || ep.State.InFlight() == 0) {
		if !lim.StartConn() {
			if pending {
				lim.EndPending()
			}
			return false, budget.MaxConnections, false
		}
		tookConn = true
	}
	return tookConn, "", true
}

// release undoes admit.
func release(lim *budget.Limits, tookConn, pending bool) {
	if pending {
		lim.EndPending()
	}
	if tookConn {
		lim.EndConn()
	}
}

// deadline answers a request whose route timeout expired: 504, or nothing
// when the client went away first.
func (h *Handler) deadline(w http.ResponseWriter, r *http.Request, ctx context.Context, st *metrics.Stats, debug bool, try int, ep *lb.Endpoint) {
	if r.Context().Err() != nil || timeout.Cause(ctx) != timeout.RouteTimeout {
		return
	}
	st.RequestTimeouts.Add(1)
	if debug {
		setDebug(w, try, ep)
	}
	w.Header()[headerTimeout] = []string{"request"}
	proxy.Error(w, http.StatusGatewayTimeout, "upstream request timeout")
}

func setDebug(w http.ResponseWriter, try int, ep *lb.Endpoint) {
	w.Header()[headerAttempts] = []string{strconv.Itoa(try)}
	if ep != nil {
		up := ep.Addr
		if ep.Workload != "" {
			up = ep.Workload + " " + ep.Addr
		}
		w.Header()[headerUpstream] = []string{up}
	}
}

func overloaded(w http.ResponseWriter, reason, format string, args ...any) {
	w.Header()[headerOverloaded] = []string{reason}
	proxy.Error(w, http.StatusServiceUnavailable, format, args...)
}
