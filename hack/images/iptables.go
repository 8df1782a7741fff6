package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The sidecar image also runs the init step (`weft-sidecar init`), which
// writes the capture rules with iptables-restore (nft or legacy backend,
// sidecar/capture). This file builds the layer that holds Debian's
// iptables, taken from the build host's own installed package (dpkg), with
// exactly what it needs and nothing else:
//
//   - the two multi-call binaries (xtables-nft-multi, xtables-legacy-multi)
//     and the iptables/ip6tables -nft, -legacy and default names as
//     symlinks to them (the default names point at nft, as Debian's
//     alternatives do);
//   - the xtables extensions the capture rules load (xtablesExtensions);
//   - the ELF closure of all of these (DT_NEEDED, resolved the way the
//     dynamic loader searches its default directories, plus PT_INTERP),
//     with every symlink on the way reproduced, so the paths the loader
//     opens exist in the image as on the host;
//   - the Debian copyright file of every package a file came from (GPL
//     binaries travel with their licence).
//
// No shell, no package manager, no ld.so.cache in the image: the loader
// falls back to its built-in directories, which is where the libraries go.

// xtablesExtensions are the match/target modules the capture rules use:
// RETURN and chain jumps (standard), -p tcp/udp --dport (tcp, udp),
// -m owner --uid-owner (owner), -j REDIRECT (REDIRECT). A rule that needs
// another one fails in tests/e2e/helm TestSidecarImageInit, which runs the
// image's own init step.
var xtablesExtensions = []string{"standard", "tcp", "udp", "owner", "REDIRECT"}

// libSearchDirs is the dynamic loader's default search order on Debian
// (multiarch first) when there is no ld.so.cache.
func libSearchDirs(triplet string) []string {
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"}
}

// iptablesSource is what the layer is made from: the host's filesystem
// (root, "/" outside tests) and dpkg.
type iptablesSource struct {
	root string
	dpkg func(ctx context.Context, args ...string) (string, error)
}

func hostDpkg(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "dpkg-query", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("dpkg-query %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// entries returns the iptables layer's entries and the package version.
func (s iptablesSource) entries(ctx context.Context) (entries []entry, version string, err error) {
	version, err = s.dpkg(ctx, "-W", "-f=${Version}", "iptables")
	if err != nil {
		return nil, "", fmt.Errorf("iptables is not installed on the build host (apt-get install -y iptables): %w", err)
	}
	list, err := s.dpkg(ctx, "-L", "iptables")
	if err != nil {
		return nil, "", err
	}
	var nft, legacy, extDir string
	for l := range strings.SplitSeq(list, "\n") {
		switch {
		case strings.HasSuffix(l, "/xtables-nft-multi"):
			nft = l
		case strings.HasSuffix(l, "/xtables-legacy-multi"):
			legacy = l
		case strings.HasSuffix(l, "/xtables"):
			extDir = l
		}
	}
	if nft == "" || legacy == "" || extDir == "" {
		return nil, "", fmt.Errorf("dpkg -L iptables lists no xtables-nft-multi, xtables-legacy-multi or xtables directory (got %q, %q, %q)", nft, legacy, extDir)
	}
	triplet := path.Base(path.Dir(extDir)) // /usr/lib/<triplet>/xtables
	t := newTree(s.root)
	roots := []string{nft, legacy}
	for _, e := range xtablesExtensions {
		roots = append(roots, path.Join(extDir, "libxt_"+e+".so"))
	}
	if err := t.addELFClosure(roots, libSearchDirs(triplet)); err != nil {
		return nil, "", err
	}
	// The names sidecar/capture runs, as symlinks next to the binaries.
	dir := path.Dir(nft)
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			t.symlink(path.Join(dir, fam+"-nft"+suffix), "xtables-nft-multi")
			t.symlink(path.Join(dir, fam+"-legacy"+suffix), path.Base(legacy))
			t.symlink(path.Join(dir, fam+suffix), "xtables-nft-multi")
		}
	}
	// Licences of every package a copied file belongs to.
	pkgs := map[string]bool{"iptables": true}
	for _, f := range t.files() {
		p, err := s.owner(ctx, f)
		if err != nil {
			return nil, "", err
		}
		pkgs[p] = true
	}
	for _, p := range slices.Sorted(mapKeys(pkgs)) {
		if err := t.add("/usr/share/doc/" + p + "/copyright"); err != nil {
			return nil, "", fmt.Errorf("licence of %s: %w", p, err)
		}
	}
	return t.entries(), strings.TrimSpace(version), nil
}

// owner is the Debian package (without :arch) that installed the file,
// asked for under each name the file has on the way to its real path
// (dpkg records /lib/... on a merged-/usr system).
func (s iptablesSource) owner(ctx context.Context, file string) (string, error) {
	var errs []error
	for _, p := range []string{file, strings.TrimPrefix(file, "/usr")} {
		out, err := s.dpkg(ctx, "-S", p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pkg, _, _ := strings.Cut(strings.SplitN(out, "\n", 2)[0], ":")
		return pkg, nil
	}
	return "", fmt.Errorf("no package owns %s: %w", file, errors.Join(errs...))
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// tree collects absolute paths copied from root with the directories and
// symlinks on their way.
type tree struct {
	root  string
	nodes map[string]entry // absolute path -> entry (name relative)
}

func newTree(root string) *tree { return &tree{root: root, nodes: map[string]entry{}} }

func (t *tree) host(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }

// add copies absolute path p, following and recording every symlink on
// the way to it.
func (t *tree) add(p string) error {
	_, err := t.resolve(p)
	return err
}

// resolve records p's components (dirs, symlinks, the final file) and
// returns the real path of the file.
func (t *tree) resolve(p string) (string, error) {
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
		cur := "/"
		restarted := false
		for i, part := range parts {
			next := path.Join(cur, part)
			st, err := os.Lstat(t.host(next))
			if err != nil {
				return "", fmt.Errorf("copy %s: %w", p, err)
			}
			switch {
			case st.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(t.host(next))
				if err != nil {
					return "", err
				}
				t.nodes[next] = entry{name: strings.TrimPrefix(next, "/"), link: target, mode: 0o777}
				if !path.IsAbs(target) {
					target = path.Join(cur, target)
				}
				p = path.Join(append([]string{target}, parts[i+1:]...)...)
				restarted = true
			case st.IsDir():
				t.nodes[next] = entry{name: strings.TrimPrefix(next, "/") + "/", dir: true, mode: int64(st.Mode().Perm())}
				cur = next
				continue
			case st.Mode().IsRegular():
				if i != len(parts)-1 {
					return "", fmt.Errorf("copy %s: %s is not a directory", p, next)
				}
				if _, ok := t.nodes[next]; !ok {
					data, err := os.ReadFile(t.host(next))
					if err != nil {
						return "", err
					}
					t.nodes[next] = entry{name: strings.TrimPrefix(next, "/"), mode: int64(st.Mode().Perm()), data: data}
				}
				return next, nil
			default:
				return "", fmt.Errorf("copy %s: %s is not a file, directory or symlink", p, next)
			}
			if restarted {
				break
			}
		}
		if !restarted {
			return "", fmt.Errorf("copy %s: a directory, not a file", p)
		}
	}
	return "", fmt.Errorf("copy %s: too many symlinks", p)
}

// symlink records a symlink (and the directories above it).
func (t *tree) symlink(at, target string) {
	for d := path.Dir(at); d != "/"; d = path.Dir(d) {
		if _, ok := t.nodes[d]; !ok {
			t.nodes[d] = entry{name: strings.TrimPrefix(d, "/") + "/", dir: true, mode: 0o755}
		}
	}
	t.nodes[at] = entry{name: strings.TrimPrefix(at, "/"), link: target, mode: 0o777}
}

// addELFClosure copies roots and, transitively, their interpreter and the
// libraries they need, resolved in dirs as the dynamic loader does.
func (t *tree) addELFClosure(roots, dirs []string) error {
	queue := slices.Clone(roots)
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		real, err := t.resolve(p)
		if err != nil {
			return err
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		f, err := elf.Open(t.host(real))
		if err != nil {
			return fmt.Errorf("%s: %w", real, err)
		}
		needed, err := f.ImportedLibraries()
		interp := ""
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				if _, rerr := prog.ReadAt(b, 0); rerr == nil {
					interp = string(bytes.TrimRight(b, "\x00"))
				}
			}
		}
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", real, err)
		}
		if interp != "" {
			queue = append(queue, interp)
		}
		for _, lib := range needed {
			found := ""
			for _, d := range dirs {
				if st, err := os.Stat(t.host(path.Join(d, lib))); err == nil && st.Mode().IsRegular() {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %v", real, lib, dirs)
			}
			queue = append(queue, found)
		}
	}
	return nil
}

// files lists the regular files recorded.
func (t *tree) files() []string {
	var out []string
	for p, e := range t.nodes {
		if !e.dir && e.link == "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// entries returns every node, parents before children.
func (t *tree) entries() []entry {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range t.nodes {
			if !yield(k) {
				return
			}
		}
	})
	out := make([]entry, 0, len(keys))
	for _, k := range keys {
		out = append(out, t.nodes[k])
	}
	return out
}

// iptablesTimeout bounds the dpkg queries.
const iptablesTimeout = time.Minute
