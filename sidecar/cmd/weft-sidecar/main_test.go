package main

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/sidecar"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--workload=order", "--namespace=shop", "--ip=127.0.0.7", "--log-level=debug"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workload != "order" || cfg.Namespace != "shop" || cfg.IP != "127.0.0.7" ||
		cfg.ServiceAccount != "default" || cfg.XDSAddress != "127.0.0.1:15012" {
		t.Errorf("cfg = %+v", cfg)
	}
	if !cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug logging not enabled")
	}
	if !cfg.TrimAfterStart {
		t.Error("start-up pages are not trimmed by default")
	}
	if cfg, err := parseFlags([]string{"--trim-after-start=false"}, io.Discard); err != nil || cfg.TrimAfterStart {
		t.Errorf("--trim-after-start=false: TrimAfterStart %v, %v", cfg.TrimAfterStart, err)
	}
	if cfg.TrimInterval != sidecar.DefaultTrimInterval || sidecar.DefaultTrimInterval <= 0 {
		t.Errorf("TrimInterval %v, want the default %v (above 0: the executable's pages are dropped again under load)", cfg.TrimInterval, sidecar.DefaultTrimInterval)
	}
	if cfg, err := parseFlags([]string{"--trim-interval=0"}, io.Discard); err != nil || cfg.TrimInterval != 0 {
		t.Errorf("--trim-interval=0: TrimInterval %v, %v", cfg.TrimInterval, err)
	}
	if !cfg.ReleaseHeap {
		t.Error("the heap is not released after a load drop by default")
	}
	if cfg, err := parseFlags([]string{"--release-heap=false"}, io.Discard); err != nil || cfg.ReleaseHeap {
		t.Errorf("--release-heap=false: ReleaseHeap %v, %v", cfg.ReleaseHeap, err)
	}
	if cfg.NetSocketIO {
		t.Error("the data-path sockets use the net package's reads and writes by default, not rawtcp's")
	}
	if cfg, err := parseFlags([]string{"--raw-socket-io=false"}, io.Discard); err != nil || !cfg.NetSocketIO {
		t.Errorf("--raw-socket-io=false: NetSocketIO %v, %v", cfg.NetSocketIO, err)
	}
	if cfg.HTTP2WriteTimeout != sidecar.DefaultHTTP2WriteTimeout {
		t.Errorf("HTTP2WriteTimeout %v by default, want %v", cfg.HTTP2WriteTimeout, sidecar.DefaultHTTP2WriteTimeout)
	}
	if cfg, err := parseFlags([]string{"--http2-write-timeout=5s"}, io.Discard); err != nil || cfg.HTTP2WriteTimeout != 5*time.Second {
		t.Errorf("--http2-write-timeout=5s: HTTP2WriteTimeout %v, %v", cfg.HTTP2WriteTimeout, err)
	}
	for _, bad := range [][]string{{"--log-level=loud"}, {"extra"}, {"--nope"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", strings.Join(bad, " "))
		}
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	tests := []struct {
		name       string
		gomemlimit string
		cgroupMax  string
		want       int64
		wantOK     bool
	}{
		{name: "128 MiB container", cgroupMax: "134217728\n", want: 134217728 / 100 * 75, wantOK: true},
		{name: "no limit", cgroupMax: "max\n"},
		{name: "no cgroup file", cgroupMax: ""},
		{name: "GOMEMLIMIT wins", gomemlimit: "50MiB", cgroupMax: "134217728\n"},
		{name: "limit too small to help", cgroupMax: "8388608\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := softMemoryLimit(tc.gomemlimit, tc.cgroupMax)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("softMemoryLimit(%q, %q) = %d, %v; want %d, %v", tc.gomemlimit, tc.cgroupMax, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                  string
		live, stacks, globals uint64
		want                  int
	}{
		{name: "sidecar at load: 3 MiB live, 2 MiB headroom", live: 3 * mib, want: 67},
		{name: "stacks and globals count in the runtime's goal", live: 2*mib + 512<<10, stacks: 256 << 10, globals: 256 << 10, want: 67},
		{name: "rounds up so the headroom is at least 2 MiB", live: 3*mib + 1, want: 67},
		{name: "live heap twice the headroom", live: 4 * mib, want: 50},
		{name: "large live heap: the live heap less the headroom", live: 64 * mib, want: 97},
		{name: "small heap", live: 1 * mib, want: 200},
		{name: "tiny heap: capped", live: 256 << 10, want: 800},
		{name: "nothing known yet: capped", want: 800},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcPercentFor(tc.live, tc.stacks, tc.globals, 2*mib); got != tc.want {
				t.Errorf("gcPercentFor(%d, %d, %d) = %d, want %d", tc.live, tc.stacks, tc.globals, got, tc.want)
			}
		})
	}
}

// The policy sets the runtime's GOGC from the heap a cycle left live, is
// re-armed by each cycle, and stays out of the way when GOGC is set.
func TestGCPolicy(t *testing.T) {
	if startGCPolicy("100", gcHeadroom) != nil {
		t.Fatal("GOGC set in the environment: the policy must not run")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	p := startGCPolicy("", gcHeadroom)
	defer p.Stop()
	if got := currentGCPercent(); got != 150 || p.Percent() != 150 {
		t.Fatalf("GOGC before the first cycle = %d (policy %d), want 150 (a 6 MB goal: the start-up headroom, 6 MiB, over the runtime's 4 MB minimum)", got, p.Percent())
	}
	live := make([]*[1 << 20]byte, 32) // 32 MiB live: more than the headroom
	for i := range live {
		live[i] = new([1 << 20]byte)
	}
	// The cleanup of the sentinel runs after a cycle collects it: wait
	// until the policy has seen two more cycles, the last of which began
	// after the allocation above (a liveness check, not a timing one).
	for seen := p.cycles.Load(); p.cycles.Load() < seen+2; {
		runtime.GC()
		runtime.Gosched()
	}
	p.Stop()
	runtime.KeepAlive(live)
	// The live heap less the headroom: ~95 % of it at 32 MiB and a little
	// more (stacks, globals), near Go's default.
	if got := currentGCPercent(); got < 90 || got >= 100 || p.Percent() != got {
		t.Errorf("GOGC with 32 MiB live = %d (policy %d), want 90-99 (the live heap less the headroom)", got, p.Percent())
	}
}

// currentGCPercent reads the runtime's GOGC without changing it.
func currentGCPercent() int {
	v := debug.SetGCPercent(100)
	debug.SetGCPercent(v)
	return v
}

func TestSetsMemProfileRate(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		want    bool
	}{
		{"", false},
		{"gctrace=1", false},
		{"memprofilerate=524288", true},
		{"gctrace=1,memprofilerate=0", true},
		{"gctrace=1, memprofilerate=4096", true},
		{"xmemprofilerate=1", false},
		{"memprofilerate", false},
	} {
		if got := setsMemProfileRate(tc.godebug); got != tc.want {
			t.Errorf("setsMemProfileRate(%q) = %v, want %v", tc.godebug, got, tc.want)
		}
	}
}
