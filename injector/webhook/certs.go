package webhook

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves a key pair from two files and re-reads them when
// either changes (size or modification time), checking at most once per
// interval. A pair that fails to load keeps the previous one in use.
type CertReloader struct {
	certFile, keyFile string
	interval          time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// NewCertReloader loads the pair once and fails if it cannot.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, interval: time.Second}
	if _, err := r.load(time.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checked) < r.interval {
		return r.cert, nil
	}
	if _, err := r.loadLocked(now); err != nil {
		// Keep serving the previous certificate (a rotation in progress
		// writes the two files one after the other).
		return r.cert, nil //nolint:nilerr // the old certificate is still valid
	}
	return r.cert, nil
}

func (r *CertReloader) load(now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked(now)
}

func (r *CertReloader) loadLocked(now time.Time) (bool, error) {
	r.checked = now
	stamp, err := fileStamp(r.certFile, r.keyFile)
	if err != nil {
		return false, err
	}
	if stamp == r.stamp && r.cert != nil {
		return false, nil
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return false, fmt.Errorf("webhook: load serving certificate: %w", err)
	}
	r.cert, r.stamp = &pair, stamp
	return true, nil
}

func fileStamp(files ...string) (string, error) {
	var s string
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("webhook: serving certificate: %w", err)
		}
		s += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}
