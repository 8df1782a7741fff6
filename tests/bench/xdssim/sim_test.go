package xdssim

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// TestSmallRun runs the whole simulation at a small size against the real
// control plane binary (built here) in both ADS flavours.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs weft-control-plane")
	}
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/weftmesh/weft/control-plane/cmd/"+mesh.BinaryControlPlane)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			spec := MeshSpec{Services: 12, Namespaces: 3, EndpointsPerService: 2}
			profiles := ""
			if !delta {
				profiles = filepath.Join(t.TempDir(), "profiles")
			}
			rep, err := Run(t.Context(), Config{
				Bin: bin, Dir: filepath.Join(t.TempDir(), "run"), Mesh: spec, Proxies: 20, Delta: delta, Conns: 2,
				Changes: 1, Storm: true, Settle: 60 * time.Second, ProfileDir: profiles,
			})
			if err != nil {
				t.Fatal(err)
			}
			if profiles != "" {
				for _, f := range []string{"heap-connected.pb.gz", "heap-changes.pb.gz", "cpu-storm.pb.gz"} {
					if fi, err := os.Stat(filepath.Join(profiles, f)); err != nil || fi.Size() == 0 {
						t.Errorf("profile %s: %v (want a non-empty file)", f, err)
					}
				}
			}
			if len(rep.Changes) != 1 || rep.Changes[0].Affected != 20 {
				t.Fatalf("changes = %+v, want one that reached all 20 proxies", rep.Changes)
			}
			if rep.StormTime <= 0 || rep.InitialBytes <= 0 || rep.RSSBytes <= 0 {
				t.Fatalf("storm %v, initial bytes %d, rss %d: want all > 0", rep.StormTime, rep.InitialBytes, rep.RSSBytes)
			}
			if rep.RSSAnon <= 0 || rep.RSSAnon > rep.RSSBytes || rep.RSSPeak < rep.RSSBytes {
				t.Fatalf("RSS %d, anonymous %d, peak %d: want 0 < anonymous <= RSS <= peak", rep.RSSBytes, rep.RSSAnon, rep.RSSPeak)
			}
			eds := rep.Changes[0].BytesPerProx
			// 12 services: SotW re-sends 12 assignments, delta one.
			if delta && eds > 2000 || !delta && eds < 3000 {
				t.Errorf("EDS bytes per proxy per change = %.0f (delta %v)", eds, delta)
			}
		})
	}
}
