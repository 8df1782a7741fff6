package helm

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

// maxImageBytes is the size budget of one archive (static binary + base,
// and iptables for the sidecar).
const maxImageBytes = 32 << 20

// readArchive returns the image config of a docker-archive tarball
// (manifest.json -> Config) and the names of the files in its layers.
// dockerArchive is a docker-archive tarball read into memory: its files by
// name and its single image's manifest entry.
type dockerArchive struct {
	files    map[string][]byte
	manifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
}

// openArchive reads a docker-archive tarball holding exactly one image.
func openArchive(path string) (*dockerArchive, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the test's own build output.
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	a := &dockerArchive{files: map[string][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		a.files[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(a.files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		return nil, fmt.Errorf("manifest.json: %w (%d images)", err, len(manifest))
	}
	a.manifest = manifest[0]
	return a, nil
}

// config decodes the image config.
func (a *dockerArchive) config() (cfg imageConfig, err error) {
	if err := json.Unmarshal(a.files[a.manifest.Config], &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", a.manifest.Config, err)
	}
	cfg.RepoTags, cfg.Layers = a.manifest.RepoTags, len(a.manifest.Layers)
	for _, l := range a.manifest.Layers {
		cfg.LayerSizes = append(cfg.LayerSizes, len(a.files[l]))
	}
	return cfg, nil
}

func readArchive(path string) (imageConfig, error) {
	a, err := openArchive(path)
	if err != nil {
		return imageConfig{}, err
	}
	return a.config()
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
		User       string   `json:"User"`
		Env        []string `json:"Env"`
	} `json:"config"`
	RepoTags   []string `json:"-"`
	Layers     int      `json:"-"`
	LayerSizes []int    `json:"-"` // compressed bytes, base first
}

func TestImages(t *testing.T) {
	dir := os.Getenv("WEFT_IMAGES_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "bin", "images")
	}
	want := uid(mesh.ProxyUID)
	for _, bin := range []string{mesh.BinaryControlPlane, mesh.BinaryInjector, mesh.BinarySidecar, mesh.BinaryCLI} {
		t.Run(bin, func(t *testing.T) {
			path := filepath.Join(dir, bin+".tar")
			st, err := os.Stat(path)
			if err != nil {
				skipOrFail(t, "%v (make images)", err)
			}
			cfg, err := readArchive(path)
			if err != nil {
				t.Fatal(err)
			}
			if ep := []string{"/usr/local/bin/" + bin}; !slices.Equal(cfg.Config.Entrypoint, ep) {
				t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, ep)
			}
			if cfg.Config.User != want {
				t.Errorf("user %q, want %q (non-root)", cfg.Config.User, want)
			}
			// The sidecar image also holds iptables for the init step
			// (TestSidecarImageInit runs it).
			layers, what := 2, "base + binary"
			if bin == mesh.BinarySidecar {
				layers, what = 3, "base + iptables + binary"
			}
			if cfg.OS != "linux" || cfg.Layers != layers {
				t.Errorf("os %q, %d layers: want linux, %s", cfg.OS, cfg.Layers, what)
			}
			if st.Size() > maxImageBytes {
				t.Errorf("%s is %d bytes, budget %d", path, st.Size(), maxImageBytes)
			}
			layerMiB := make([]string, 0, len(cfg.LayerSizes))
			for _, n := range cfg.LayerSizes {
				layerMiB = append(layerMiB, fmt.Sprintf("%.2f", float64(n)/(1<<20)))
			}
			t.Logf("%s: %.1f MiB (layers %s MiB gzipped: %s), %v, user %s, entrypoint %v", bin, float64(st.Size())/(1<<20),
				strings.Join(layerMiB, " + "), what, cfg.RepoTags, cfg.Config.User, cfg.Config.Entrypoint)
		})
	}
}

func uid(n int) string { return strconv.Itoa(n) + ":" + strconv.Itoa(n) }
