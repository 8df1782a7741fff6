package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// joinTokenPrefix starts every join token, so that secret scanners and
// humans can tell what one is.
const joinTokenPrefix = "wjt_"

// JoinTokens is the local Authenticator: the launcher (weftctl up) mints one
// token per workload and hands it to that workload's sidecar; the token
// proves that workload's identity and nothing else. Only the SHA-256 of a
// token is kept (a token is 256 random bits, so a fast hash is enough). A
// workload has at most one live token: minting again revokes the previous
// one. It is safe for concurrent use.
type JoinTokens struct {
	now func() time.Time

	mu         sync.RWMutex
	byHash     map[[sha256.Size]byte]tokenEntry
	byWorkload map[string][sha256.Size]byte // namespace/workload -> hash
}

type tokenEntry struct {
	id      Identity
	expires time.Time // zero: never
}

var _ Authenticator = (*JoinTokens)(nil)

// NewJoinTokens returns an empty token store. now is the clock (time.Now
// when nil).
func NewJoinTokens(now func() time.Time) *JoinTokens {
	if now == nil {
		now = time.Now
	}
	return &JoinTokens{
		now:        now,
		byHash:     map[[sha256.Size]byte]tokenEntry{},
		byWorkload: map[string][sha256.Size]byte{},
	}
}

// Mint returns a new token for id, valid for ttl (forever when 0), and
// revokes any earlier token of the same workload. The token is returned
// once and never stored.
func (j *JoinTokens) Mint(id Identity, ttl time.Duration) (string, error) {
	if id.Workload == "" {
		return "", fmt.Errorf("ca: join token for %+v: workload is required", id)
	}
	for _, seg := range []string{id.Namespace, id.ServiceAccount} {
		if err := spiffeid.ValidatePathSegment(seg); err != nil {
			return "", fmt.Errorf("ca: join token for %+v: %w", id, err)
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("ca: join token: %w", err)
	}
	tok := joinTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	e := tokenEntry{id: id}
	if ttl > 0 {
		e.expires = j.now().Add(ttl)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.putLocked(sha256.Sum256([]byte(tok)), e)
	return tok, nil
}

func (j *JoinTokens) putLocked(h [sha256.Size]byte, e tokenEntry) {
	key := e.id.Namespace + "/" + e.id.Workload
	if old, ok := j.byWorkload[key]; ok {
		delete(j.byHash, old)
	}
	j.byWorkload[key] = h
	j.byHash[h] = e
}

// Revoke drops the token of workload in namespace, if any.
func (j *JoinTokens) Revoke(namespace, workload string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	key := namespace + "/" + workload
	if h, ok := j.byWorkload[key]; ok {
		delete(j.byHash, h)
		delete(j.byWorkload, key)
	}
}

// Authenticate implements Authenticator: it returns the identity a live
// token was minted for. Errors wrap ErrUnauthenticated and never contain
// the token.
func (j *JoinTokens) Authenticate(_ context.Context, credential string) (Identity, error) {
	if !strings.HasPrefix(credential, joinTokenPrefix) {
		return Identity{}, fmt.Errorf("ca: join token: %w: not a join token", ErrUnauthenticated)
	}
	h := sha256.Sum256([]byte(credential))
	j.mu.RLock()
	e, ok := j.byHash[h]
	j.mu.RUnlock()
	switch {
	case !ok:
		return Identity{}, fmt.Errorf("ca: join token: %w: unknown or revoked token", ErrUnauthenticated)
	case !e.expires.IsZero() && !j.now().Before(e.expires):
		return Identity{}, fmt.Errorf("ca: join token of %s: %w: expired at %s", e.id, ErrUnauthenticated, e.expires.Format(time.RFC3339))
	}
	return e.id, nil
}

// The token file lets the launcher mint tokens in one process and the
// control plane check them in another: it holds hashes only, never a token.
type tokenFile struct {
	Version int             `json:"version"`
	Tokens  []tokenFileItem `json:"tokens"`
}

type tokenFileItem struct {
	SHA256         string     `json:"sha256"`
	Namespace      string     `json:"namespace"`
	ServiceAccount string     `json:"serviceAccount"`
	Workload       string     `json:"workload"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
}

// WriteFile saves every live token's hash and identity to path (mode
// 0600, replaced atomically).
func (j *JoinTokens) WriteFile(path string) error {
	f := tokenFile{Version: 1, Tokens: []tokenFileItem{}}
	j.mu.RLock()
	for h, e := range j.byHash {
		it := tokenFileItem{SHA256: hex.EncodeToString(h[:]), Namespace: e.id.Namespace, ServiceAccount: e.id.ServiceAccount, Workload: e.id.Workload}
		if !e.expires.IsZero() {
			exp := e.expires.UTC()
			it.ExpiresAt = &exp
		}
		f.Tokens = append(f.Tokens, it)
	}
	j.mu.RUnlock()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("ca: join token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ca: join token file: %w", err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("ca: join token file: %w", err)
	}
	return nil
}

// ReadJoinTokensFile loads a store written by WriteFile. now is the clock
// (time.Now when nil).
func ReadJoinTokensFile(path string, now func() time.Time) (*JoinTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: join token file: %w", err)
	}
	var f tokenFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("ca: join token file %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("ca: join token file %s: version %d, want 1", path, f.Version)
	}
	j := NewJoinTokens(now)
	for i, it := range f.Tokens {
		raw, err := hex.DecodeString(it.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("ca: join token file %s: token %d: bad sha256", path, i)
		}
		e := tokenEntry{id: Identity{Namespace: it.Namespace, ServiceAccount: it.ServiceAccount, Workload: it.Workload}}
		if e.id.Workload == "" || e.id.Namespace == "" || e.id.ServiceAccount == "" {
			return nil, errors.New("ca: join token file " + path + ": token without namespace, service account or workload")
		}
		if it.ExpiresAt != nil {
			e.expires = *it.ExpiresAt
		}
		j.putLocked([sha256.Size]byte(raw), e)
	}
	return j, nil
}
