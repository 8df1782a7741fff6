package xds

import "sync"

// Resource names in requests are kept for as long as a stream lives: they
// are its subscription (ads.go). Decoded from each request, they are
// copies per proxy of the same few names (a proxy's EDS names are its
// outbound clusters, shared with every proxy of its reach): ~2.4 KB per
// proxy at 5,000 proxies. The status callbacks replace them with one
// shared copy before the stream keeps them.
const (
	// internMaxNames bounds a generation of the interner: past it the
	// older generation is dropped (names in use come back on their next
	// request), so what a client sends cannot grow the table for good.
	internMaxNames = 1 << 16
	// internMaxLen: longer names are left alone (no cluster name is).
	internMaxLen = 256
)

// interner hands out one shared copy of each string. Two generations: a
// name not asked for since the last rotation is forgotten at the next.
// Safe for concurrent use.
type interner struct {
	mu       sync.Mutex
	cur, old map[string]string
}

func newInterner() *interner {
	return &interner{cur: map[string]string{}, old: map[string]string{}}
}

// names replaces each of names with its shared copy, in place.
func (in *interner) names(names []string) {
	if len(names) == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, n := range names {
		if len(n) > internMaxLen {
			continue
		}
		if s, ok := in.cur[n]; ok {
			names[i] = s
			continue
		}
		if s, ok := in.old[n]; ok {
			n = s
		}
		if len(in.cur) >= internMaxNames {
			in.old, in.cur = in.cur, make(map[string]string, len(in.cur))
		}
		in.cur[n] = n
		names[i] = n
	}
}
