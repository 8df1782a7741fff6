// Package timeout applies a route's deadlines: Request bounds a whole
// request (every try and every backoff: route timeout), Try bounds one try
// (per_try_timeout). When a try fails, Cause tells a route timeout (answer
// 504, no more tries) from a per-try timeout (a reset: retry) from the
// client going away (answer nothing).
package timeout

import (
	"context"
	"errors"
	"time"
)

// ErrRequestTimeout is the cause of a request context whose route timeout
// expired.
var ErrRequestTimeout = errors.New("timeout: route timeout expired")

// ErrTryTimeout is the cause of a try context whose per-try timeout
// expired.
var ErrTryTimeout = errors.New("timeout: per-try timeout expired")

// Request returns ctx bounded by d (0: unbounded) and its cancel function.
func Request(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, ErrRequestTimeout)
}

// Try returns the context of one try, bounded by d (0: only by ctx).
func Try(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, ErrTryTimeout)
}

// Outcome says why a context ended.
type Outcome int

// Outcomes.
const (
	// Alive: the context has not ended.
	Alive Outcome = iota
	// RouteTimeout: the route timeout expired (504).
	RouteTimeout
	// TryTimeout: only the try's own deadline expired (a reset).
	TryTimeout
	// ClientGone: the client canceled the request.
	ClientGone
)

// Cause says why the try context ctx ended.
func Cause(ctx context.Context) Outcome {
	if ctx.Err() == nil {
		return Alive
	}
	switch c := context.Cause(ctx); {
	case errors.Is(c, ErrRequestTimeout):
		return RouteTimeout
	case errors.Is(c, ErrTryTimeout):
		return TryTimeout
	}
	return ClientGone
}
