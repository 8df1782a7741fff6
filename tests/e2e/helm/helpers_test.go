package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/weftmesh/weft/tests/kubeharness"
)

const releaseNS = "weft-system"

func required() bool {
	v := os.Getenv(kubeharness.EnvRequire)
	return v != "" && v != "0"
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if required() {
		t.Fatalf("%s (%s is set, so this is a failure)", msg, kubeharness.EnvRequire)
	}
	t.Skip(msg + "; set " + kubeharness.EnvRequire + "=1 to fail instead")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	r, err := kubeharness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "charts", "weft") }

// helmBin finds helm: $WEFT_HELM, else ./.cache/tools/bin/helm.
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("WEFT_HELM")
	if p == "" {
		p = filepath.Join(repoRoot(t), ".cache", "tools", "bin", "helm")
	}
	if _, err := os.Stat(p); err != nil {
		skipOrFail(t, "helm not found at %s (make helm-tools)", p)
	}
	return p
}

// helmRunner runs helm with hermetic cache/config dirs and a kubeconfig.
type helmRunner struct {
	bin, home, kubeconfig string
}

func newHelm(t *testing.T, kubeconfig string) *helmRunner {
	return &helmRunner{bin: helmBin(t), home: t.TempDir(), kubeconfig: kubeconfig}
}

func (h *helmRunner) run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	if h.kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+h.kubeconfig)
	} else {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+filepath.Join(h.home, "none"))
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

// decodeObjects splits a multi-document manifest into objects.
func decodeObjects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode rendered manifest: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}
