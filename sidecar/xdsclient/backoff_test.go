package xdsclient

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	wantMax := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	for i, w := range wantMax {
		w *= time.Millisecond
		d := b.next()
		if d < w/2 || d > w {
			t.Fatalf("attempt %d: delay %v not in [%v, %v]", i, d, w/2, w)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Fatalf("after reset: delay %v, want <= 100ms", d)
	}
}
