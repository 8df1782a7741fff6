package helm

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
	"github.com/weftmesh/weft/sidecar/capture"
	"github.com/weftmesh/weft/tests/netnsharness"
)

// unpackImage applies the layers of a docker-archive tarball, in order,
// into dir (a container runtime's root filesystem) and returns the image
// config.
func unpackImage(archive, dir string) (imageConfig, error) {
	a, err := openArchive(archive)
	if err != nil {
		return imageConfig{}, err
	}
	cfg, err := a.config()
	if err != nil {
		return cfg, err
	}
	for _, l := range a.manifest.Layers {
		if err := applyLayer(a.files[l], dir); err != nil {
			return cfg, fmt.Errorf("layer %s: %w", l, err)
		}
	}
	return cfg, nil
}

// applyLayer extracts one (gzip or plain) layer tarball over dir.
func applyLayer(b []byte, dir string) error {
	var r io.Reader = strings.NewReader(string(b))
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		target := filepath.Join(dir, name)
		if base := filepath.Base(name); strings.HasPrefix(base, ".wh.") {
			if err := os.RemoveAll(filepath.Join(filepath.Dir(target), strings.TrimPrefix(base, ".wh."))); err != nil {
				return err
			}
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, os.FileMode(h.Mode).Perm()|modeBits(h.Mode)); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, data, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
			return err
		}
	}
}

func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// initContainer is what the injector adds to a pod with the defaults, and
// the pod's volumes by name.
func initContainer(t *testing.T, annotations map[string]string) (corev1.Container, map[string]corev1.Volume) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app-0", Namespace: "shop", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
	}
	res, err := inject.Pod(pod, meshconfig.Config{}, inject.DefaultTemplate())
	if err != nil || !res.Injected {
		t.Fatalf("inject: %v (skipped %q)", err, res.Skipped)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range res.Pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for _, c := range res.Pod.Spec.InitContainers {
		if c.Name == mesh.ContainerInit {
			return c, vols
		}
	}
	t.Fatalf("no %s init container", mesh.ContainerInit)
	return corev1.Container{}, nil
}

// TestSidecarImageInit proves the sidecar image can run the init step it
// is injected for: bin/images/weft-sidecar.tar is unpacked into a root
// filesystem, and the image's own entrypoint runs with the injected init
// container's args, chrooted into that rootfs mounted read-only
// (readOnlyRootFilesystem), with /proc mounted as a runtime does, as uid
// 0 with only NET_ADMIN and NET_RAW (plus SYS_CHROOT, which chroot(8)
// needs) and no_new_privs, inside a fresh network namespace. The host's
// iptables-save then finds every rule capture.Render makes for those args,
// for the injected args (auto: nft in a fresh namespace) and the legacy
// backend, each without and with DNS capture (weft.dev/dns-capture).
func TestSidecarImageInit(t *testing.T) {
	netnsharness.Require(t)
	for _, tool := range []string{"unshare", "mount", "chroot", "iptables-nft-save", "iptables-legacy-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (util-linux, coreutils, iptables)", tool)
		}
	}
	dir := os.Getenv("WEFT_IMAGES_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "bin", "images")
	}
	archive := filepath.Join(dir, mesh.BinarySidecar+".tar")
	if _, err := os.Stat(archive); err != nil {
		skipOrFail(t, "%v (make images)", err)
	}
	rootfs := t.TempDir()
	if err := os.Chmod(rootfs, 0o755); err != nil { //nolint:gosec // G302: a root filesystem.
		t.Fatal(err)
	}
	cfg, err := unpackImage(archive, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	ic, vols := initContainer(t, nil)
	// The runtime's mount points: /proc and the init container's emptyDir
	// volumes (the read-only root needs a writable /run for
	// iptables-legacy's lock).
	mountPoints := []string{"proc"}
	var emptyDirs []string
	for _, m := range ic.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.EmptyDir == nil {
			t.Fatalf("init container mounts %s, which is not an emptyDir of the pod", m.Name)
		}
		emptyDirs = append(emptyDirs, m.MountPath)
		mountPoints = append(mountPoints, m.MountPath)
	}
	for _, d := range mountPoints {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	sc := ic.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Fatalf("init container securityContext %+v: want root, NET_ADMIN+NET_RAW only, read-only root, no escalation", sc)
	}
	if len(ic.Command) != 0 || len(cfg.Config.Entrypoint) == 0 {
		t.Fatalf("init container command %q, image entrypoint %q: want the image's entrypoint", ic.Command, cfg.Config.Entrypoint)
	}
	if cfg.Config.User != uid(mesh.ProxyUID) {
		t.Errorf("image user %q, want %s (the proxy; the init container overrides it)", cfg.Config.User, uid(mesh.ProxyUID))
	}
	wantRules := func(t *testing.T, args []string) []string {
		t.Helper()
		opts, err := capture.ParseInitFlags(args[1:], io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := capture.Render(opts.Config)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for l := range strings.SplitSeq(rules, "\n") {
			if strings.HasPrefix(l, "-A ") {
				want = append(want, l)
			}
		}
		return want
	}
	dnsInit, _ := initContainer(t, map[string]string{mesh.AnnotationDNSCapture: "true"})

	total := 0
	for _, tc := range []struct {
		name, save string
		args       []string
		extra      []string
	}{
		{name: "injected args (auto: nft)", save: "iptables-nft-save", args: ic.Args},
		{name: "legacy backend", save: "iptables-legacy-save", args: ic.Args, extra: []string{"--iptables-backend=legacy"}},
		{name: "dns capture (auto: nft)", save: "iptables-nft-save", args: dnsInit.Args},
		{name: "dns capture, legacy", save: "iptables-legacy-save", args: dnsInit.Args, extra: []string{"--iptables-backend=legacy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := wantRules(t, tc.args)
			total += len(want)
			ns := newNetns(t)
			argv := slices.Concat(cfg.Config.Entrypoint, tc.args, tc.extra)
			out, err := runInImage(t.Context(), ns, rootfs, emptyDirs, cfg.Config.Env, argv)
			if err != nil {
				t.Fatalf("%q in the image: %v\n%s", argv, err, out)
			}
			t.Logf("%q in the image (read-only root, NET_ADMIN+NET_RAW):\n%s", argv, out)
			saved, err := exec.CommandContext(t.Context(), "ip", "netns", "exec", ns, tc.save, "-t", "nat").CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.save, err, saved)
			}
			// iptables-save spells the implicit protocol match out.
			norm := strings.NewReplacer(" -m tcp ", " ", " -m udp ", " ").Replace(string(saved))
			for _, l := range want {
				if !strings.Contains(norm, l+"\n") {
					t.Errorf("%s lacks %q", tc.save, l)
				}
			}
			if t.Failed() {
				t.Logf("%s -t nat:\n%s", tc.save, saved)
			}
		})
	}
	st, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f MiB archive, %d capture rules written by its own init step over 4 runs", mesh.BinarySidecar, float64(st.Size())/(1<<20), total)
}

// newNetns makes an empty network namespace (wh-img-<random>), removed
// when t ends.
func newNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "wh-img-" + hex.EncodeToString(b)
	if out, err := exec.CommandContext(t.Context(), "ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// imageRunScript runs in the namespace's private mount namespace: the
// rootfs bind-mounted read-only, /proc, then the capabilities a pod with
// the init container's securityContext gets, then chroot.
const imageRunScript = `set -e
R=$1; shift
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t proc proc "$R/proc"
while [ "$1" != -- ]; do mount -t tmpfs -o size=1m emptydir "$R/$1"; shift; done
shift
exec setpriv --no-new-privs --reuid=0 --regid=0 --clear-groups \
  --bounding-set=-all,+net_admin,+net_raw,+sys_chroot --inh-caps=-all \
  chroot "$R" "$@"`

// runInImage runs argv from the image's rootfs (read-only) in netns ns
// with env as the process environment and a tmpfs (an emptyDir) at each
// of emptyDirs.
func runInImage(ctx context.Context, ns, rootfs string, emptyDirs, env, argv []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args := slices.Concat([]string{"netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", imageRunScript, "sh", rootfs}, emptyDirs, []string{"--"}, argv)
	cmd := exec.CommandContext(ctx, "ip", args...) //nolint:gosec // G204: the test's own arguments.
	// The image's environment; the host tools (sh, mount, setpriv, chroot)
	// are found on the same PATH.
	cmd.Env = env
	return cmd.CombinedOutput()
}
