package demo

import (
	"os"
	"strings"
	"testing"

	"github.com/weftmesh/weft/control-plane/launch"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

func TestSetLabelOnShopMesh(t *testing.T) {
	data, err := os.ReadFile("../mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/mesh.yaml"
	out, err := setLabel(data, "WorkloadEntry", "payment-2", labelServing, servingYes)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "# Scaling payment") {
		t.Error("comments were lost")
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := file.Parse(path, out)
	if err != nil {
		t.Fatalf("edited file: %v\n%s", err, out)
	}
	for _, w := range st.Workloads {
		want := map[string]string{"payment-1": servingYes, "payment-2": servingYes, "payment-3": servingNo}[w.Name]
		if got := w.Labels[labelServing]; got != want {
			t.Errorf("%s: label %s = %q, want %q", w.Name, labelServing, got, want)
		}
	}
	// Still a valid mesh file with the same workloads and commands.
	ws, err := launch.ReadWorkloads(path, "/bin")
	if err != nil {
		t.Fatalf("edited file: %v\n%s", err, out)
	}
	if len(ws) != 7 {
		t.Errorf("%d workloads", len(ws))
	}
	back, err := setLabel(out, "WorkloadEntry", "payment-2", labelServing, servingNo)
	if err != nil {
		t.Fatal(err)
	}
	again, err := setLabel(back, "WorkloadEntry", "payment-2", labelServing, servingYes)
	if err != nil || string(again) != string(out) {
		t.Errorf("edit is not stable: %v", err)
	}
	if _, err := setLabel(data, "WorkloadEntry", "payment-9", labelServing, servingYes); err == nil {
		t.Error("want error for a missing entry")
	}
}
