package meshrss

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/bench/xdssim"
)

func TestWriteMesh(t *testing.T) {
	tests := []struct {
		name         string
		spec         xdssim.MeshSpec
		wantPolicies int
	}{
		{"reach 5", xdssim.MeshSpec{Services: 20, Namespaces: 4, EndpointsPerService: 1, Reach: 1}, 4},
		{"reach all", xdssim.MeshSpec{Services: 20, Namespaces: 4, EndpointsPerService: 1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "mesh.yaml")
			if err := writeMesh(tc.spec, file, "127.0.91.7"); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if !strings.Contains(s, "name: svc-0000-0, namespace: ns-000") || strings.Count(s, "address: 127.0.91.7,") != 1 || strings.Contains(s, "address: 10.0.0.1,") {
				t.Errorf("WorkloadEntry 0 is not alone at 127.0.91.7:\n%s", s)
			}
			if got := strings.Count(s, "kind: Service\n"); got != tc.spec.Services {
				t.Errorf("%d Services, want %d", got, tc.spec.Services)
			}
			if got := strings.Count(s, "kind: NetworkPolicy"); got != tc.wantPolicies {
				t.Errorf("%d NetworkPolicies, want %d", got, tc.wantPolicies)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	Markdown(&b, []Result{{Services: 1000, Reach: "5", Ready: 1234 * time.Millisecond, RSS: 30 * 1024, Anon: 7 * 1024, File: 23 * 1024, HWM: 31 * 1024}})
	want := "| 1000 | 5 | 1.2s | 30.0 | 7.0 | 23.0 | 31.0 |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
}

func TestSave(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/heap" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("profile"))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "heap.pb.gz")
	if err := save(t.Context(), srv.URL+"/debug/pprof/heap?gc=1", file); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "profile" {
		t.Errorf("saved %q, %v", b, err)
	}
	if err := save(t.Context(), srv.URL+"/nothing", file+"2"); err == nil {
		t.Error("a 404 was saved")
	}
}
