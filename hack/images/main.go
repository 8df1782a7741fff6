// Command images assembles Weft's container images as image archives
// (docker-archive tarballs, which `docker load`, `podman load`, `kind load
// image-archive`, `crane push` and skopeo read) from statically built
// binaries, with github.com/google/go-containerregistry and no daemon.
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/static/ ./...cmd/...
//	GOWORK=off go run ./hack/images -bin bin/static -out bin/images -tag dev
//
// Every image is two layers on nothing (scratch):
//  1. base: /etc/passwd and /etc/group with root and weft (uid/gid 1337),
//     /etc/ssl/certs/ca-certificates.crt (copied from -ca-certs), /tmp
//     (1777), /etc/nsswitch.conf (files dns) — a distroless-static
//     equivalent made here, so nothing is pulled;
//  2. the binary at /usr/local/bin/<name> (0755).
//
// weft-sidecar has a third layer between them: Debian's iptables (nft and
// legacy) with exactly the shared libraries and extensions it needs,
// copied from the build host's installed package (iptables.go), because
// the same image runs the init step that writes the capture rules.
//
// Config: Entrypoint [/usr/local/bin/<name>], User 1337:1337 (non-root; the
// proxy's uid is mesh.ProxyUID, which the capture rules exclude), WorkingDir
// /, OCI labels. Timestamps are fixed (SOURCE_DATE_EPOCH, default 0) so the
// same binaries give the same image digests. build/images/<name>/Dockerfile
// documents the same image as a multi-stage Docker build.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// uid is the non-root user every image runs as (mesh.ProxyUID; this
// module stays outside the workspace, so the value is spelled here and
// tests/e2e/helm checks it against mesh.ProxyUID).
const uid = 1337

// binaries are the images to build: file name in -bin -> image name.
var binaries = []string{"weft-control-plane", "weft-injector", sidecarBinary, "weftctl"}

// sidecarBinary is the image that also carries iptables (mesh.BinarySidecar).
const sidecarBinary = "weft-sidecar"

type config struct {
	bin, out, registry, tag, caCerts string
	epoch                            time.Time
	// iptables is the sidecar's iptables layer and the version of the
	// Debian package it came from.
	iptables        v1.Layer
	iptablesVersion string
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/static", "directory of the statically built binaries")
	flag.StringVar(&c.out, "out", "bin/images", "where the <name>.tar archives go")
	flag.StringVar(&c.registry, "registry", "ghcr.io/weftmesh", "image reference prefix written into the archives")
	flag.StringVar(&c.tag, "tag", "dev", "image tag")
	flag.StringVar(&c.caCerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the base layer")
	flag.Parse()
	c.epoch = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "images: SOURCE_DATE_EPOCH:", err)
			os.Exit(1)
		}
		c.epoch = time.Unix(sec, 0).UTC()
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	base, err := baseLayer(c)
	if err != nil {
		return fmt.Errorf("base layer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
	defer cancel()
	ents, version, err := iptablesSource{root: "/", dpkg: hostDpkg}.entries(ctx)
	if err != nil {
		return fmt.Errorf("iptables layer: %w", err)
	}
	if c.iptables, err = layer(ents, c.epoch); err != nil {
		return fmt.Errorf("iptables layer: %w", err)
	}
	c.iptablesVersion = version
	for _, b := range binaries {
		path := filepath.Join(c.out, b+".tar")
		if err := build(c, base, b, path); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Printf("  %-40s %6.1f MiB  %s/%s:%s\n", path, float64(st.Size())/(1<<20), c.registry, b, c.tag)
	}
	return nil
}

func build(c config, base v1.Layer, bin, path string) error {
	data, err := os.ReadFile(filepath.Join(c.bin, bin))
	if err != nil {
		return err
	}
	if err := checkStatic(data); err != nil {
		return err
	}
	app, err := layer([]entry{
		{name: "usr/", dir: true, mode: 0o755},
		{name: "usr/local/", dir: true, mode: 0o755},
		{name: "usr/local/bin/", dir: true, mode: 0o755},
		{name: "usr/local/bin/" + bin, mode: 0o755, data: data},
	}, c.epoch)
	if err != nil {
		return err
	}
	layers := []v1.Layer{base, app}
	if bin == sidecarBinary {
		layers = []v1.Layer{base, c.iptables, app}
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + bin}
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	if bin == sidecarBinary {
		// sidecar/capture finds iptables-{nft,legacy}-{save,restore} on PATH.
		cf.Config.Env[0] = "PATH=/usr/local/bin:/usr/sbin:/usr/bin"
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       bin,
		"org.opencontainers.image.source":      "https://github.com/weftmesh/weft",
		"org.opencontainers.image.version":     c.tag,
		"org.opencontainers.image.description": "Weft " + bin + " (static, non-root " + strconv.Itoa(uid) + ")",
	}
	if bin == sidecarBinary {
		cf.Config.Labels["org.opencontainers.image.description"] = "Weft " + bin + " (static, non-root " + strconv.Itoa(uid) + "; the init step runs as root with NET_ADMIN/NET_RAW and Debian iptables " + c.iptablesVersion + ")"
		cf.Config.Labels["dev.weft.iptables.version"] = c.iptablesVersion
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: c.epoch})
	if err != nil {
		return err
	}
	ref, err := name.NewTag(c.registry + "/" + bin + ":" + c.tag)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// checkStatic refuses an ELF binary with a PT_INTERP (dynamically linked):
// it would not start on a scratch base.
func checkStatic(b []byte) error {
	if len(b) < 4 || string(b[:4]) != "\x7fELF" {
		return errors.New("not an ELF binary")
	}
	if bytes.Contains(b[:min(len(b), 4096)], []byte("/lib64/ld-linux")) || bytes.Contains(b[:min(len(b), 4096)], []byte("/lib/ld-")) {
		return errors.New("dynamically linked (build with CGO_ENABLED=0)")
	}
	return nil
}

func baseLayer(c config) (v1.Layer, error) {
	certs, err := os.ReadFile(c.caCerts)
	if err != nil {
		return nil, fmt.Errorf("ca certificates (install ca-certificates or pass -ca-certs): %w", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nweft:x:%d:%d:weft:/home/weft:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nweft:x:%d:\nnobody:x:65534:\n", uid)
	return layer([]entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/weft/", dir: true, mode: 0o700, uid: uid},
		{name: "tmp/", dir: true, mode: 0o1777},
	}, c.epoch)
}

type entry struct {
	name string
	dir  bool
	link string // symlink target when set
	mode int64
	uid  int
	data []byte
}

// layer makes an uncompressed tar of entries and wraps it as a gzip layer.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
