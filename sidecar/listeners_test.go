package sidecar

import (
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/weftmesh/weft/sidecar/router"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestListenerManagerStarted: started (what TrimAfterStart waits for)
// closes when the first table is applied, not before, and only once.
func TestListenerManagerStarted(t *testing.T) {
	var tables atomic.Pointer[router.Table]
	m := newListenerManager(slog.New(slog.DiscardHandler), 0, &tables, nil)
	if !m.apply(t.Context(), nil) || closed(m.started) {
		t.Fatal("started before any table was applied")
	}
	if !m.apply(t.Context(), &router.Table{}) || !closed(m.started) {
		t.Fatal("not started after the first table was applied")
	}
	if !m.apply(t.Context(), &router.Table{}) { // a second table must not close it again
		t.Fatal("second table not applied")
	}
}
