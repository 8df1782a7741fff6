package stackgrow

// Size is the stack Grow reserves below its caller: with the caller's
// frames, the runtime grows the stack to the next power of two that fits,
// 32 KiB, what a sidecar's HTTP/2 handler goroutine otherwise reached by
// doubling.
const Size = 16 << 10

// Grow makes sure the goroutine has Size bytes of stack below the
// caller's frame. It costs a 16 KiB clear of stack memory (the frame must
// be initialized) when the stack is already large enough.
//
//go:noinline
func Grow() {
	var buf [Size]byte
	use(buf[:])
}

// use keeps buf alive, so the compiler reserves its frame.
//
//go:noinline
func use([]byte) {}
