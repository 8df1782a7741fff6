// Package retry is the route's retry policy as the sidecar applies it:
// Compile reads an Envoy RetryPolicy (plus Weft's retry_non_idempotent route
// metadata) into an immutable Policy; Classify names the retry_on condition
// a try's outcome falls under; Policy.Retry decides, Policy.Backoff says how
// long to wait; BufferBody makes a request body of known length
// replayable, and Tee one of unknown length, sent as it is read (its
// retries send the kept copy, then the rest of the client's body).
//
// Policies are shared by every request on the route and never modified.
package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"

	"github.com/weftmesh/weft/sidecar/transport"
)

// Condition is one retry_on condition, as a bit.
type Condition uint8

// Conditions.
const (
	ConnectFailure Condition = 1 << iota
	RefusedStream
	Reset
	Status5xx
	GatewayError
	RetriableCodes
)

// Policy is a compiled retry_policy.
type Policy struct {
	On Condition
	// Codes are retriable_status_codes (with RetriableCodes).
	Codes []int
	// NumRetries is the number of retries after the first try.
	NumRetries int
	// PerTryTimeout bounds each try; 0: none.
	PerTryTimeout time.Duration
	// BackoffBase and BackoffMax shape the wait between tries.
	BackoffBase, BackoffMax time.Duration
	// NonIdempotent allows every condition for every method (Weft route
	// metadata retry_non_idempotent); otherwise only connect-failure and
	// refused-stream apply to non-idempotent methods.
	NonIdempotent bool
	// HostSelectionAttempts is host_selection_retry_max_attempts; with
	// AvoidPrevious a retry avoids endpoints already tried.
	HostSelectionAttempts int
	AvoidPrevious         bool
}

// Default is the policy of a route that has none: what the contract's
// defaults say.
func Default() *Policy {
	return &Policy{
		On:                    ConnectFailure | RefusedStream | Reset,
		NumRetries:            mesh.DefaultRetryAttempts,
		BackoffBase:           mesh.DefaultRetryBackoffBase,
		BackoffMax:            mesh.RetryBackoffMaxFactor * mesh.DefaultRetryBackoffBase,
		HostSelectionAttempts: mesh.RetryHostSelectionMaxAttempts,
		AvoidPrevious:         true,
	}
}

// Compile reads rp. A nil rp means no retries at all (the control plane
// always sends one; a route without one is a route that asked for none).
func Compile(rp *route.RetryPolicy, nonIdempotent bool) (*Policy, error) {
	p := &Policy{NonIdempotent: nonIdempotent}
	if rp == nil {
		return p, nil
	}
	for c := range strings.SplitSeq(rp.GetRetryOn(), ",") {
		switch strings.TrimSpace(c) {
		case "":
		case mesh.RetryOnConnectFailure:
			p.On |= ConnectFailure
		case mesh.RetryOnRefusedStream:
			p.On |= RefusedStream
		case mesh.RetryOnReset:
			p.On |= Reset
		case mesh.RetryOn5xx:
			p.On |= Status5xx
		case mesh.RetryOnGatewayError:
			p.On |= GatewayError
		case mesh.RetryOnRetriableStatusCodes:
			p.On |= RetriableCodes
		default:
			return nil, fmt.Errorf("retry_on: %q is not supported", c)
		}
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.Codes = append(p.Codes, int(c))
	}
	p.NumRetries = 1 // Envoy's default when num_retries is absent
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = int(n.GetValue())
	}
	p.PerTryTimeout = rp.GetPerTryTimeout().AsDuration()
	p.BackoffBase = mesh.DefaultRetryBackoffBase
	if b := rp.GetRetryBackOff(); b != nil {
		p.BackoffBase = b.GetBaseInterval().AsDuration()
		if b.GetMaxInterval() != nil {
			p.BackoffMax = b.GetMaxInterval().AsDuration()
		}
	}
	if p.BackoffMax < p.BackoffBase {
		p.BackoffMax = mesh.RetryBackoffMaxFactor * p.BackoffBase
	}
	p.HostSelectionAttempts = int(rp.GetHostSelectionRetryMaxAttempts())
	for _, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != mesh.RetryHostPredicatePreviousHosts {
			return nil, fmt.Errorf("retry_host_predicate: %q is not supported", hp.GetName())
		}
		p.AvoidPrevious = true
	}
	switch {
	case rp.GetRetryPriority() != nil:
		return nil, errors.New("retry_priority: not supported")
	case len(rp.GetRetriableHeaders()) > 0 || len(rp.GetRetriableRequestHeaders()) > 0:
		return nil, errors.New("retriable headers: not supported")
	case rp.GetRateLimitedRetryBackOff() != nil:
		return nil, errors.New("rate_limited_retry_back_off: not supported")
	}
	return p, nil
}

// Classify returns the condition a try's outcome falls under: for an error,
// ConnectFailure (never connected), RefusedStream (the peer refused the
// stream before processing it) or Reset (anything else, per-try timeouts
// included); for a response, the status conditions it meets (0 for a
// success). viaSidecar says the endpoint is a peer sidecar (a tunnel): its
// 421 Misdirected Request means the peer no longer (or not yet) serves the
// port, so the app never saw the request, which RFC 9110 (15.5.20) lets a
// client retry on another connection: RefusedStream. This is what happens
// while an endpoint change is on its way to the caller. So is its 503 with
// mesh.HeaderAppUnreachable (it could not connect to its app, e.g. a pod
// whose app stopped before its peers heard of it): RefusedStream; that
// needs the response header, see ClassifyResponse.
func Classify(status int, err error, viaSidecar bool) Condition {
	return ClassifyResponse(status, nil, err, viaSidecar)
}

// ClassifyResponse is Classify with the try's response header (nil when
// there is no response).
func ClassifyResponse(status int, header http.Header, err error, viaSidecar bool) Condition {
	if err != nil {
		var de *transport.DialError
		switch {
		case errors.As(err, &de):
			return ConnectFailure
		case errors.Is(err, transport.ErrNotProcessed), strings.Contains(err.Error(), "REFUSED_STREAM"):
			return RefusedStream
		}
		return Reset
	}
	if viaSidecar && (status == http.StatusMisdirectedRequest ||
		status == http.StatusServiceUnavailable && header.Get(mesh.HeaderAppUnreachable) != "") {
		return RefusedStream
	}
	var c Condition
	if status >= 500 {
		c |= Status5xx | RetriableCodes
		if status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
			c |= GatewayError
		}
	} else if status >= 400 {
		c |= RetriableCodes
	}
	return c
}

// Retryable reports whether an outcome of condition c for method may be
// retried under p (attempt counts and budgets aside).
func (p *Policy) Retryable(method string, status int, c Condition) bool {
	if c == 0 || p.On&c == 0 {
		return false
	}
	hit := p.On & c
	if hit == RetriableCodes {
		found := false
		for _, code := range p.Codes {
			if code == status {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if hit&(ConnectFailure|RefusedStream) != 0 {
		return true
	}
	return p.NonIdempotent || Idempotent(method)
}

// Idempotent reports whether method is idempotent (RFC 9110 9.2.2).
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Backoff is the wait before retry n (1-based): d = min(base·2^(n-1), max)
// plus jitter uniform in [0, d/2), capped at max, never below base.
func (p *Policy) Backoff(n int) time.Duration {
	if p.BackoffBase <= 0 {
		return 0
	}
	d := p.BackoffBase
	for i := 1; i < n && d < p.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.BackoffMax)
	if half := int64(d / 2); half > 0 {
		d += time.Duration(rand.Int64N(half)) //nolint:gosec // G404: jitter, not security.
	}
	return max(min(d, p.BackoffMax), p.BackoffBase)
}
