package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

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

// TestTrimEvery: the drop is repeated until the context ends, and a
// failed drop is reported once and ends the repeats.
func TestTrimEvery(t *testing.T) {
	t.Run("until the context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		dropped := true
		var calls []string
		log := slog.New(afterDrop{level: slog.LevelDebug, dropped: &dropped, calls: &calls})
		n := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			trimEvery(ctx, log, time.Millisecond, func() (memtrim.Result, error) {
				if n++; n == 3 {
					cancel()
				}
				return memtrim.Result{Mappings: 2}, nil
			})
		}()
		<-done
		if n != 3 {
			t.Errorf("%d drops, want 3 (the third ends the context)", n)
		}
		if len(calls) != 0 {
			t.Errorf("logger calls: %q, want none", calls)
		}
	})
	t.Run("failed drop", func(t *testing.T) {
		dropped := true
		var calls []string
		log := slog.New(afterDrop{level: slog.LevelInfo, dropped: &dropped, calls: &calls})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n := 0
		trimEvery(ctx, log, time.Millisecond, func() (memtrim.Result, error) {
			if n++; n == 2 {
				cancel() // a second drop is already wrong; end there
			}
			return memtrim.Result{}, errors.New("smaps: permission denied")
		})
		if n != 1 {
			t.Errorf("%d drops, want 1 (the failure ends them)", n)
		}
		if want := []string{"Enabled(WARN)", "Handle(executable pages no longer dropped)"}; !slices.Equal(calls, want) {
			t.Errorf("logger calls: %q, want %q", calls, want)
		}
	})
}
