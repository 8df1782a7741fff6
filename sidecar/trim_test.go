package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/weftmesh/weft/sidecar/internal/memtrim"
)

// afterDrop is a slog handler that records whether the logger ran after
// the drop (dropped set by the trim function of the test).
type afterDrop struct {
	level   slog.Level
	dropped *bool
	calls   *[]string
}

func (h afterDrop) Enabled(_ context.Context, l slog.Level) bool {
	if *h.dropped {
		*h.calls = append(*h.calls, "Enabled("+l.String()+")")
	}
	return l >= h.level
}

func (h afterDrop) Handle(_ context.Context, r slog.Record) error {
	if *h.dropped {
		*h.calls = append(*h.calls, "Handle("+r.Message+")")
	}
	return nil
}

func (h afterDrop) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h afterDrop) WithGroup(string) slog.Handler      { return h }

// TestTrimAfterStartRunsNoLoggerAfterTheDrop: once the executable's pages
// are dropped, whatever code runs is mapped again (64 KiB and more per
// fault), so at the default level the logger is not called after the
// drop; at debug level the line is written, and a failure is always
// reported.
func TestTrimAfterStartRunsNoLoggerAfterTheDrop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		level     slog.Level
		err       error
		wantCalls int
	}{
		{name: "info", level: slog.LevelInfo},
		{name: "warn", level: slog.LevelWarn},
		{name: "debug", level: slog.LevelDebug, wantCalls: 2},
		{name: "failed", level: slog.LevelInfo, err: errors.New("madvise: EINVAL"), wantCalls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dropped bool
			var calls []string
			log := slog.New(afterDrop{level: tc.level, dropped: &dropped, calls: &calls})
			trimAfterStart(t.Context(), log, func() (memtrim.Result, error) {
				dropped = true
				return memtrim.Result{Mappings: 2, Unmapped: 1 << 20}, tc.err
			})
			if !dropped {
				t.Fatal("trim not called")
			}
			if len(calls) != tc.wantCalls {
				t.Errorf("logger calls after the drop: %q, want %d", calls, tc.wantCalls)
			}
		})
	}
}
