package capture

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
)

// Backend is a set of iptables tools: nft (iptables-nft), legacy
// (iptables-legacy) or the distribution's default (iptables).
type Backend struct {
	Name    string
	Save    string
	Restore string
}

// Backends in preference order when none has rules yet (as Istio: nft
// first).
var backends = [...]Backend{
	{Name: "nft", Save: "iptables-nft-save", Restore: "iptables-nft-restore"},
	{Name: "legacy", Save: "iptables-legacy-save", Restore: "iptables-legacy-restore"},
	{Name: "default", Save: "iptables-save", Restore: "iptables-restore"},
}

// Runner runs a command with stdin and returns its stdout (tests fake it).
type Runner func(ctx context.Context, stdin string, name string, args ...string) (string, error)

// ExecRunner runs real commands.
func ExecRunner(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// countRules counts "-A" lines in iptables-save output.
func countRules(saved string) int {
	n := 0
	for l := range strings.SplitSeq(saved, "\n") {
		if strings.HasPrefix(l, "-A ") {
			n++
		}
	}
	return n
}

// DetectBackend returns the backend to use: want ("nft", "legacy",
// "default") when set, else the first available one whose tables already
// hold rules, else the first available one. lookPath reports availability.
func DetectBackend(ctx context.Context, want string, run Runner, lookPath func(string) (string, error)) (Backend, error) {
	var avail []Backend
	for _, b := range backends {
		if _, err := lookPath(b.Restore); err != nil {
			continue
		}
		if _, err := lookPath(b.Save); err != nil {
			continue
		}
		if want != "" && want != "auto" {
			if b.Name == want {
				return b, nil
			}
			continue
		}
		avail = append(avail, b)
	}
	if len(avail) == 0 {
		if want != "" && want != "auto" {
			return Backend{}, fmt.Errorf("capture: iptables backend %q is not installed", want)
		}
		return Backend{}, fmt.Errorf("capture: no iptables-restore found (install iptables)")
	}
	for _, b := range avail {
		if b.Name == "default" {
			continue
		}
		out, err := run(ctx, "", b.Save)
		if err == nil && countRules(out) > 0 {
			return b, nil
		}
	}
	return avail[0], nil
}

// Apply writes the rules for cfg in the current network namespace with
// backend b. Re-running it leaves the same rules.
func Apply(ctx context.Context, cfg Config, b Backend, run Runner, log *slog.Logger) error {
	rules, err := Render(cfg)
	if err != nil {
		return err
	}
	saved, err := run(ctx, "", b.Save, "-t", "nat")
	if err != nil {
		return fmt.Errorf("capture: read nat table: %w", err)
	}
	in := dedupe(rules, saved) + "\n"
	if _, err := run(ctx, in, b.Restore, "--noflush"); err != nil {
		return fmt.Errorf("capture: restore (%s): %w", b.Name, err)
	}
	log.Info("capture rules applied", "backend", b.Name, "restore", b.Restore)
	return nil
}
