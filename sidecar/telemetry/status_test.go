package telemetry

import (
	"strconv"
	"testing"
)

func TestStatusLabel(t *testing.T) {
	for _, c := range []int{0, 42, 100, 200, 404, 503, 599, 600, 999} {
		if got, want := statusLabel(c), strconv.Itoa(c); got != want {
			t.Errorf("statusLabel(%d) = %q, want %q", c, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = statusLabel(503) }); n != 0 {
		t.Errorf("statusLabel(503) allocates %v times", n)
	}
}
