package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// TokenFile is an Authenticator backed by a join-token file (WriteFile's
// format) that it re-reads when the file changes, so `weftctl up` can mint
// tokens for new workloads without restarting the control plane. A file
// that fails to load is logged and the previous tokens stay in force.
type TokenFile struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	cur  atomic.Pointer[JoinTokens]
	last []byte // owned by Run
}

var _ Authenticator = (*TokenFile)(nil)

// OpenTokenFile loads path once (an error if it cannot) and returns the
// authenticator; Run follows later changes every interval.
func OpenTokenFile(path string, interval time.Duration, log *slog.Logger) (*TokenFile, error) {
	if log == nil {
		log = slog.Default()
	}
	t := &TokenFile{path: path, interval: interval, log: log, now: time.Now}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Authenticate implements Authenticator.
func (t *TokenFile) Authenticate(ctx context.Context, credential string) (Identity, error) {
	return t.cur.Load().Authenticate(ctx, credential)
}

// Run re-reads the file every interval until ctx is done, and returns nil.
func (t *TokenFile) Run(ctx context.Context) error {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := t.reload(); err != nil {
			t.log.Error("ca: join token file not reloaded; the previous tokens stay in force", "error", err)
		}
	}
}

func (t *TokenFile) reload() error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("ca: join token file: %w", err)
	}
	if t.last != nil && bytes.Equal(data, t.last) {
		return nil
	}
	j, err := ReadJoinTokensFile(t.path, t.now)
	if err != nil {
		return err
	}
	if j == nil {
		return errors.New("ca: join token file: nothing loaded")
	}
	first := t.last == nil
	t.last = data
	t.cur.Store(j)
	if !first {
		t.log.Info("ca: join token file reloaded", "path", t.path)
	}
	return nil
}
