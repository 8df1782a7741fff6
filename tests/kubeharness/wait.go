package kubeharness

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls cond every 50 ms until it holds, logging how long that
// took, or fails the test with cond's last explanation when ctx ends.
func WaitFor(ctx context.Context, t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the deadline (last: %s)", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
