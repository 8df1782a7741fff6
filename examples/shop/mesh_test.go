package shop_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/control-plane/launch"
)

// The shop's mesh file is valid for the control plane, and every entry's
// command expands to the shop binary with its own role and addresses.
func TestMeshFile(t *testing.T) {
	ws, err := launch.ReadWorkloads("mesh.yaml", "/bin")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.Name)
		if w.Name == "loadgen" {
			if w.Command != nil {
				t.Errorf("loadgen has a command: %q", w.Command)
			}
			continue
		}
		if len(w.Command) == 0 || w.Command[0] != "/bin/shop" {
			t.Errorf("%s: command %q", w.Name, w.Command)
			continue
		}
		args := strings.Join(w.Command, " ")
		for _, want := range []string{"--instance=" + w.Name, "--listen=" + w.Address + ":8080", "--proxy=" + w.ProxyURL()} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: command %q lacks %q", w.Name, args, want)
			}
		}
	}
	want := []string{"api-gateway-1", "inventory-1", "loadgen", "order-1", "payment-1", "payment-2", "payment-3"}
	if !slices.Equal(names, want) {
		t.Errorf("workloads %q, want %q", names, want)
	}
}
