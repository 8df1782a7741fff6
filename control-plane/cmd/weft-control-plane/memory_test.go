package main

import "testing"

func TestGCSettings(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		gogc, gomemlimit, cgmax string
		percent                 int
		limit                   int64
	}{
		{name: "defaults, no cgroup limit", cgmax: "max\n", percent: defaultGOGC},
		{name: "defaults, no cgroup file", percent: defaultGOGC},
		{name: "cgroup limit", cgmax: "1073741824\n", percent: defaultGOGC, limit: 1073741824 / 100 * memLimitPercent},
		{name: "GOGC wins", gogc: "200", cgmax: "1073741824\n", limit: 1073741824 / 100 * memLimitPercent},
		{name: "GOMEMLIMIT wins", gomemlimit: "2GiB", cgmax: "1073741824\n", percent: defaultGOGC},
		{name: "both set", gogc: "off", gomemlimit: "2GiB", cgmax: "1073741824\n"},
		{name: "garbage cgroup", cgmax: "lots", percent: defaultGOGC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			percent, limit := gcSettings(tc.gogc, tc.gomemlimit, tc.cgmax)
			if percent != tc.percent || limit != tc.limit {
				t.Errorf("gcSettings(%q, %q, %q) = %d, %d; want %d, %d", tc.gogc, tc.gomemlimit, tc.cgmax, percent, limit, tc.percent, tc.limit)
			}
		})
	}
}

// TestReadBufferSize: over TLS the xDS server keeps no read buffer of its
// own per connection (the TLS connection buffers its records); in
// plaintext gRPC takes its buffers from a pool, so they may have a size.
func TestReadBufferSize(t *testing.T) {
	if got := readBufferSize(true); got != 0 {
		t.Errorf("TLS: read buffer %d bytes per connection, want 0", got)
	}
	if got := readBufferSize(false); got <= 0 {
		t.Errorf("plaintext: read buffer %d, want a pooled buffer size > 0", got)
	}
}
