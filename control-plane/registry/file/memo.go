package file

// docMemo remembers, by their exact text, the documents of a mesh file
// that decoded cleanly, so that re-reading a large file after a small edit
// decodes only the documents that changed (YAML and strict JSON decoding
// are nearly all of Parse's cost: ~1.6 CPU s for 10,000 WorkloadEntries).
// A remembered document still goes through every check that involves the
// rest of the file (metadata, duplicates, the kind's validation, and
// build's cross-checks), with its own line numbers; its decoded object is
// shared with the states made before, which never modify it.
//
// Two generations: a document absent from a whole parse is forgotten. A
// nil *docMemo remembers nothing. Not safe for concurrent use (Source.Run
// owns one).
type docMemo struct {
	cur, old map[string]memoEntry
}

// memoEntry is one decoded document: its kind (index in knownKinds; -1
// for an empty document), object and object name.
type memoEntry struct {
	kind   int
	obj    any
	object string
}

func newDocMemo() *docMemo {
	return &docMemo{cur: map[string]memoEntry{}, old: map[string]memoEntry{}}
}

func (m *docMemo) get(raw []byte) (memoEntry, bool) {
	if m == nil {
		return memoEntry{}, false
	}
	if e, ok := m.cur[string(raw)]; ok {
		return e, true
	}
	e, ok := m.old[string(raw)]
	if ok {
		m.cur[string(raw)] = e
	}
	return e, ok
}

func (m *docMemo) put(raw []byte, e memoEntry) {
	if m != nil {
		m.cur[string(raw)] = e
	}
}

// rotate ends a parse: what it did not use is forgotten at the next one.
func (m *docMemo) rotate() {
	m.old, m.cur = m.cur, make(map[string]memoEntry, len(m.cur))
}
