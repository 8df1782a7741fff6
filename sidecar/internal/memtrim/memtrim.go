package memtrim

// Result is what Trim dropped.
type Result struct {
	// Unmapped is the size of the executable's read-only mappings whose
	// pages were dropped (bytes, resident or not).
	Unmapped uint64
	// Mappings is how many mappings that was.
	Mappings int
}

// Trim drops the mappings of the running executable's read-only segments
// (Linux; elsewhere it does nothing). Call it once, when starting up is
// done: it changes which of the process's pages are resident, not what it
// computes.
func Trim() (Result, error) { return dropExecutable() }
