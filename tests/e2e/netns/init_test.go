package netns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/netnsharness"
)

// TestInitBackends runs `weft-sidecar init` against iptables-nft and
// iptables-legacy, twice each (idempotent), and checks that auto detection
// follows the backend that already holds rules (as Istio does).
func TestInitBackends(t *testing.T) {
	netnsharness.Require(t)
	n := netnsharness.New(t)
	bin := sidecarBin
	count := func(ns *netnsharness.NS, save string) int {
		out, err := ns.Run(save, "-t", "nat")
		if err != nil {
			t.Fatalf("%s: %v\n%s", save, err, out)
		}
		return strings.Count(string(out), "-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001") +
			strings.Count(string(out), "-A OUTPUT -p tcp -j WEFT_OUTPUT")
	}
	for _, b := range []string{"nft", "legacy"} {
		t.Run(b, func(t *testing.T) {
			ns := n.AddPod("init-"+b, map[string]netip.Addr{})
			for range 2 {
				if out, err := ns.Run(bin, mesh.SidecarInitCommand, "--iptables-backend="+b, mesh.InitFlagExcludeOutboundPorts+"=5432"); err != nil {
					t.Fatalf("init: %v\n%s", err, out)
				}
			}
			if got := count(ns, "iptables-"+b+"-save"); got != 2 {
				t.Errorf("%s: redirect and jump rules counted %d times; want once each", b, got)
			}
		})
	}
	t.Run("auto follows existing legacy rules", func(t *testing.T) {
		ns := n.AddPod("init-auto", map[string]netip.Addr{})
		if out, err := ns.Run("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "-j", "RETURN"); err != nil {
			t.Fatalf("seed legacy: %v\n%s", err, out)
		}
		if out, err := ns.Run(bin, mesh.SidecarInitCommand); err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
		if got := count(ns, "iptables-legacy-save"); got != 2 {
			t.Errorf("auto did not write into legacy (count %d)", got)
		}
		if got := count(ns, "iptables-nft-save"); got != 0 {
			t.Errorf("auto also wrote into nft (count %d)", got)
		}
	})
}
