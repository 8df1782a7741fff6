package kubeharness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestStart starts a cluster (no controller-manager), checks the API is
// served with the CRDs Established, that the kubeconfig works with the
// built kubectl, and that a namespace is usable at once.
func TestStart(t *testing.T) {
	c := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s", v.GitVersion)
	if !strings.HasPrefix(v.GitVersion, "v1.") {
		t.Errorf("server version %q", v.GitVersion)
	}

	// Every CRD in api/crds is served.
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(root, "api", "crds", "*.yaml"))
	for _, p := range paths {
		// weft.dev_<plural>.yaml
		plural := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "weft.dev_"), ".yaml")
		gvr := schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: plural}
		if _, err := c.Dynamic.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list %s: %v", gvr, err)
		}
	}

	if err := c.CreateNamespace(ctx, "harness", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(c.BinDir, BinKubectl)
	if _, err := os.Stat(kubectl); err == nil {
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "get", "namespace", "harness", "-o", "jsonpath={.metadata.labels.a}")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "b" {
			t.Errorf("kubectl: %v: %s", err, out)
		}
	}
}

// TestStartWithControllerManager checks the controllers run: the
// ServiceAccount controller fills in namespaces.
func TestStartWithControllerManager(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := Start(t, WithControllerManager(), WithoutCRDs())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := c.CreateNamespace(ctx, "with-kcm", nil); err != nil {
		t.Fatal(err)
	}
}

func TestReadVersion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.env")
	if err := os.WriteFile(p, []byte("# c\nETCD_VERSION=3.7.3\nK8S_VERSION=1.37.2   # pinned\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readVersion(p, "K8S_VERSION")
	if err != nil || got != "1.37.2" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := readVersion(p, "NOPE"); err == nil {
		t.Error("missing key: no error")
	}
}
