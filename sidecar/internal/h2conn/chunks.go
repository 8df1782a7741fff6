package h2conn

import "sync"

// Chunks hold the bytes of a received body that were not read yet, in
// pooled chunks: chunks[0][off:], then the others. A chunk goes back to
// its pool once read, so a body holds its unread bytes (which the
// windows bound) in at most one chunk more; a buffer kept per stream
// grew to what the peer once sent ahead of the reader and stayed that
// size. The body's mutex guards it.
type Chunks struct {
	chunks []*[]byte
	off    int
}

// chunkSizes are the sizes of the chunks, as net/http's: a new chunk
// is the smallest that holds the DATA payload that needs it
// (MinFrameSize, a payload's most as both sides read them, at most), so
// a small body takes a small chunk.
var chunkSizes = [...]int{1 << 10, 2 << 10, 4 << 10, 8 << 10, MinFrameSize}

// chunkPools pool the chunks of each size of chunkSizes.
var chunkPools [len(chunkSizes)]sync.Pool

// getChunk is an empty chunk for n bytes (at most its largest size).
func getChunk(n int) *[]byte {
	i := 0
	for i < len(chunkSizes)-1 && chunkSizes[i] < n {
		i++
	}
	if b, ok := chunkPools[i].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, chunkSizes[i])
	return &b
}

func putChunk(b *[]byte) {
	*b = (*b)[:0]
	for i, size := range chunkSizes {
		if cap(*b) == size {
			chunkPools[i].Put(b)
			return
		}
	}
}

// Empty reports whether no byte waits.
func (b *Chunks) Empty() bool { return len(b.chunks) == 0 }

// Push appends data.
func (b *Chunks) Push(data []byte) {
	for len(data) > 0 {
		var last *[]byte
		if n := len(b.chunks); n > 0 && len(*b.chunks[n-1]) < cap(*b.chunks[n-1]) {
			last = b.chunks[n-1]
		} else {
			last = getChunk(len(data))
			b.chunks = append(b.chunks, last)
		}
		n := copy((*last)[len(*last):cap(*last)], data)
		*last = (*last)[:len(*last)+n]
		data = data[n:]
	}
}

func (b *Chunks) dropFirst() {
	putChunk(b.chunks[0])
	b.chunks[0] = nil
	b.chunks, b.off = b.chunks[1:], 0
}

// Read moves what fits of the bytes waiting into p.
func (b *Chunks) Read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		ch := *b.chunks[0]
		k := copy(p[n:], ch[b.off:])
		n += k
		b.off += k
		if b.off == len(ch) {
			b.dropFirst()
		}
	}
	return n
}

// Rest takes every byte waiting, in a slice of its own.
func (b *Chunks) Rest() []byte {
	n := -b.off
	for _, ch := range b.chunks {
		n += len(*ch)
	}
	rest := make([]byte, 0, n)
	for len(b.chunks) > 0 {
		rest = append(rest, (*b.chunks[0])[b.off:]...)
		b.dropFirst()
	}
	b.chunks = nil
	return rest
}

// Drop drops every byte waiting and returns how many.
func (b *Chunks) Drop() int {
	if len(b.chunks) == 0 {
		return 0
	}
	n := -b.off
	for len(b.chunks) > 0 {
		n += len(*b.chunks[0])
		b.dropFirst()
	}
	b.chunks = nil
	return n
}

// Held is how many bytes of chunks b holds.
func (b *Chunks) Held() int {
	n := 0
	for _, ch := range b.chunks {
		n += cap(*ch)
	}
	return n
}
