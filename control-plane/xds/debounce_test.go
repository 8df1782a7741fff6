package xds

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestDebounce(t *testing.T) {
	const delay, maxDelay = 100 * time.Millisecond, time.Second
	tests := []struct {
		name string
		// events are sent at these offsets from the start.
		events []time.Duration
		// pushes are expected at these offsets.
		pushes []time.Duration
	}{
		{"one event", []time.Duration{0}, []time.Duration{100 * time.Millisecond}},
		{"burst coalesced", []time.Duration{0, 30 * time.Millisecond, 60 * time.Millisecond}, []time.Duration{160 * time.Millisecond}},
		{"two bursts", []time.Duration{0, 500 * time.Millisecond}, []time.Duration{100 * time.Millisecond, 600 * time.Millisecond}},
		{"max delay caps a long burst", everyMS(50, 1500), []time.Duration{1000 * time.Millisecond, 1550 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				start := time.Now()
				var got []time.Duration
				d := &debouncer{delay: delay, maxDelay: maxDelay, push: func() { got = append(got, time.Since(start)) }}
				events := make(chan struct{}, 1)
				done := make(chan struct{})
				go func() { d.run(ctx, events); close(done) }()
				for _, at := range tc.events {
					time.Sleep(at - time.Since(start))
					events <- struct{}{}
					synctest.Wait()
				}
				time.Sleep(5 * time.Second)
				cancel()
				<-done
				if len(got) != len(tc.pushes) {
					t.Fatalf("pushes at %v, want %v", got, tc.pushes)
				}
				for i := range got {
					if got[i] != tc.pushes[i] {
						t.Fatalf("pushes at %v, want %v", got, tc.pushes)
					}
				}
			})
		})
	}
}

func everyMS(step, until int) []time.Duration {
	var out []time.Duration
	for ms := 0; ms < until; ms += step {
		out = append(out, time.Duration(ms)*time.Millisecond)
	}
	return out
}
