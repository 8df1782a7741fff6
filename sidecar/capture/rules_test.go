package capture

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderGolden(t *testing.T) {
	custom := DefaultConfig()
	custom.IncludeInboundPorts = []string{"8080", "9090"}
	custom.ExcludeInboundPorts = []uint16{22}
	custom.IncludeOutboundPorts = []string{"80", "8080"}
	custom.ExcludeOutboundPorts = []uint16{5432, 5432}
	custom.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("10.0.0.7/8")}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default", DefaultConfig()},
		{"custom", custom},
		{"dns", func() Config { c := DefaultConfig(); c.CaptureDNS = true; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".rules")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("rules (-want +got):\n%s", d)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
	}{
		{"no inbound port", func(c *Config) { c.InboundPort = 0 }},
		{"dns without a port", func(c *Config) { c.CaptureDNS, c.DNSPort = true, 0 }},
		{"bad include inbound", func(c *Config) { c.IncludeInboundPorts = []string{"http"} }},
		{"bad include outbound", func(c *Config) { c.IncludeOutboundPorts = []string{"0"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			if _, err := Render(c); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// fakeIPTables is a Runner over saved tables per backend, recording restores.
type fakeIPTables struct {
	saved    map[string]string
	restored []string
}

func (f *fakeIPTables) run(_ context.Context, stdin, name string, _ ...string) (string, error) {
	if strings.HasSuffix(name, "-save") {
		return f.saved[name], nil
	}
	f.restored = append(f.restored, name+"\n"+stdin)
	return "", nil
}

func TestDetectBackend(t *testing.T) {
	all := func(string) (string, error) { return "/x", nil }
	onlyLegacy := func(n string) (string, error) {
		if strings.Contains(n, "legacy") {
			return "/x", nil
		}
		return "", errors.New("no")
	}
	for _, tc := range []struct {
		name, want string
		saved      map[string]string
		look       func(string) (string, error)
		wantName   string
	}{
		{"empty prefers nft", "", nil, all, "nft"},
		{"legacy has rules", "", map[string]string{"iptables-legacy-save": "*nat\n-A OUTPUT -j KUBE\n"}, all, "legacy"},
		{"only legacy installed", "auto", nil, onlyLegacy, "legacy"},
		{"explicit", "legacy", map[string]string{"iptables-nft-save": "-A X\n"}, all, "legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeIPTables{saved: tc.saved}
			b, err := DetectBackend(context.Background(), tc.want, f.run, tc.look)
			if err != nil {
				t.Fatal(err)
			}
			if b.Name != tc.wantName {
				t.Errorf("backend %s, want %s", b.Name, tc.wantName)
			}
		})
	}
}

func TestApplyIdempotentJumps(t *testing.T) {
	rules, err := Render(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIPTables{saved: map[string]string{"iptables-nft-save": "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j WEFT_INBOUND\n-A OUTPUT -p tcp -j WEFT_OUTPUT\nCOMMIT\n"}}
	if err := Apply(context.Background(), DefaultConfig(), backends[0], f.run, discard()); err != nil {
		t.Fatal(err)
	}
	got := f.restored[0]
	if strings.Contains(got, "-A PREROUTING") || strings.Contains(got, "-A OUTPUT") {
		t.Errorf("jumps re-added on a second run:\n%s", got)
	}
	if !strings.Contains(got, ":WEFT_OUTPUT - [0:0]") || !strings.Contains(rules, "-A PREROUTING") {
		t.Errorf("chains not declared (flushed):\n%s", got)
	}
}
