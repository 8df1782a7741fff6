package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/ca"
)

// Identity in local mode (docs/architecture.md, "Identity and mTLS
// contract"): Start makes the mesh CA's directory <run dir>/ca (the root is
// generated there once and reused by every later run of the control
// plane), mints one join token per workload, writes the token hashes to
// <run dir>/ca/join-tokens.json for the control plane (--join-tokens) and
// each token to <run dir>/tokens/<node id>.token (0600) for its sidecar
// (--token-file), which also gets the trust bundle (--ca-bundle
// <run dir>/ca/root-certs.pem) and the trust domain.
//
// The secure channel needs a sidecar that has those flags: Start asks the
// sidecar binary (`weft-sidecar -h`) and, when it has no --token-file, runs
// the control plane with --insecure-xds instead (and says so in its log).

const (
	caDirName      = "ca"
	tokensDirName  = "tokens"
	joinTokensFile = "join-tokens.json" //nolint:gosec // G101: a file name; the file holds token hashes only.
)

// security is what Start prepared for the secure channel.
type security struct {
	enabled    bool
	caDir      string
	joinTokens string
	tokenFiles map[string]string // by node id
}

// sidecarSupportsIdentity reports whether the sidecar binary has the
// identity flags (--token-file, --ca-bundle).
func sidecarSupportsIdentity(ctx context.Context, bin string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-h") //nolint:gosec // G204: our own binary.
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // -h exits non-zero with some flag packages
	return strings.Contains(out.String(), "-token-file") && strings.Contains(out.String(), "-ca-bundle")
}

// prepareSecurity makes the CA directory, mints the tokens and writes the
// files of every workload.
func (m *Mesh) prepareSecurity(ctx context.Context) error {
	sec := &security{
		caDir:      filepath.Join(m.runDir, caDirName),
		tokenFiles: map[string]string{},
	}
	m.sec = sec
	switch m.cfg.secure {
	case secureOff:
		return nil
	case secureOn:
		if !sidecarSupportsIdentity(ctx, filepath.Join(m.binDir, mesh.BinarySidecar)) {
			return errors.New("launch: the sidecar binary has no --token-file/--ca-bundle flags (secure xDS required)")
		}
	case secureAuto:
		if !sidecarSupportsIdentity(ctx, filepath.Join(m.binDir, mesh.BinarySidecar)) {
			m.cfg.logger.Warn("the sidecar binary has no --token-file/--ca-bundle: running the control plane with --insecure-xds")
			return nil
		}
	}
	sec.enabled = true
	td, err := spiffeid.TrustDomainFromString(m.cfg.trustDomain)
	if err != nil {
		return fmt.Errorf("launch: trust domain: %w", err)
	}
	if _, err := ca.Open(ctx, td, ca.NewDirStore(sec.caDir)); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	tokens := ca.NewJoinTokens(nil)
	dir := filepath.Join(m.runDir, tokensDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	for _, w := range m.workloads {
		tok, err := tokens.Mint(ca.Identity{Namespace: w.Namespace, ServiceAccount: w.ServiceAccount, Workload: w.Name}, 0)
		if err != nil {
			return fmt.Errorf("launch: %w", err)
		}
		path := filepath.Join(dir, w.NodeID()+".token")
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("launch: %w", err)
		}
		sec.tokenFiles[w.NodeID()] = path
	}
	sec.joinTokens = filepath.Join(sec.caDir, joinTokensFile)
	if err := tokens.WriteFile(sec.joinTokens); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	return nil
}

func (m *Mesh) securityControlPlaneArgs() []string {
	if !m.sec.enabled {
		return []string{"--insecure-xds", "--mtls-mode=" + string(m.cfg.mtlsMode)}
	}
	return []string{
		"--ca-dir=" + m.sec.caDir,
		"--join-tokens=" + m.sec.joinTokens,
		"--cert-lifetime=" + m.cfg.certLifetime.String(),
		"--mtls-mode=" + string(m.cfg.mtlsMode),
		"--trust-domain=" + m.cfg.trustDomain,
	}
}

func (m *Mesh) securitySidecarArgs(w Workload) []string {
	if !m.sec.enabled {
		return nil
	}
	return []string{
		"--ca-bundle=" + m.TrustBundleFile(),
		"--token-file=" + m.sec.tokenFiles[w.NodeID()],
		"--trust-domain=" + m.cfg.trustDomain,
	}
}

// Secure reports whether the mesh runs with the secure xDS channel (CA,
// join tokens, TLS); false when the sidecar binary predates it or
// WithInsecureXDS was given.
func (m *Mesh) Secure() bool { return m.sec != nil && m.sec.enabled }

// CADir is the mesh CA's directory (the control plane's --ca-dir).
func (m *Mesh) CADir() string { return m.sec.caDir }

// TrustBundleFile is the trust bundle the sidecars start with.
func (m *Mesh) TrustBundleFile() string { return filepath.Join(m.sec.caDir, ca.FileBundle) }

// TokenFile is the join-token file of a workload's sidecar (by node id),
// "" when the mesh is not secure.
func (m *Mesh) TokenFile(nodeID string) string { return m.sec.tokenFiles[nodeID] }

// TrustDomain is the mesh's trust domain.
func (m *Mesh) TrustDomain() string { return m.cfg.trustDomain }

// defaultTrustDomain is the mesh config's default.
func defaultTrustDomain() string { return meshconfig.Default().TrustDomain }
