package xdsclient

import (
	"math/rand/v2"
	"time"
)

// backoff is jittered exponential backoff: each delay is drawn from
// [d/2, d), where d doubles from base up to max.
type backoff struct {
	base, max time.Duration
	attempt   int
}

func (b *backoff) next() time.Duration {
	d := b.base
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.attempt++
	half := d / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.attempt = 0 }
