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
// (Linux; elsewhere it does nothing). Call it when starting up is done:
// it changes which of the process's pages are resident, not what it
// computes. A process that drops them again and again uses a Trimmer.
func Trim() (Result, error) { return new(Trimmer).Trim() }

// A Trimmer drops the executable's read-only mappings each time its Trim
// is called, as Trim does. Its first call finds which file is the
// executable; the later ones read smaps again (a mapping that has come
// to hold a written page, e.g. a debugger's breakpoint, is left alone
// from then on) through the same buffers, allocating only the open file,
// so that a process can trim every few seconds without making garbage.
// A Trimmer is for one goroutine at a time.
type Trimmer struct{ t trimmer }

// Trim drops the executable's read-only mappings (Linux; elsewhere it
// does nothing).
func (t *Trimmer) Trim() (Result, error) { return t.t.drop() }
