package h2conn

import (
	"slices"
	"testing"
)

// TestBodyChunks (h2server's TestRequestBodyChunks before the fold): a
// small body takes a small chunk, and many small DATA payloads share
// chunks: what a body holds stays within its unread bytes and one chunk.
func TestBodyChunks(t *testing.T) {
	tests := []struct {
		name     string
		payloads []int
		max      int
	}{
		{"100 bytes", []int{100}, 1 << 10},
		{"3,000 payloads of 1 byte", slices.Repeat([]int{1}, 3000), 3000 + 1<<10},
		{"a 16 KiB payload", []int{16 << 10}, 16 << 10},
		{"payloads of 1,025 bytes", slices.Repeat([]int{1025}, 40), 40*1025 + 2<<10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Body{}
			b.Init()
			total := 0
			for _, n := range tc.payloads {
				if !b.Add(make([]byte, n)) {
					t.Fatal("Add refused")
				}
				total += n
			}
			if held := b.Held(); held > tc.max || held < total {
				t.Fatalf("%d bytes held for %d unread, want %d to %d", held, total, total, tc.max)
			}
		})
	}
}
