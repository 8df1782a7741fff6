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
