package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
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
