package ca

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotFound is returned by a Store that holds no CA material yet.
var ErrNotFound = errors.New("ca: no CA material stored")

// Store keeps the CA's material across restarts. DirStore keeps it in a
// directory; a Kubernetes Secret store comes with the kube registry.
// Save replaces the whole material; it is called on first start and after
// every root-rotation step.
type Store interface {
	// Load returns the stored material, or an error wrapping ErrNotFound.
	Load(ctx context.Context) (Material, error)
	// Save stores m, replacing what was there.
	Save(ctx context.Context, m Material) error
}

// Files of a DirStore.
const (
	FileCertChain = "ca-cert.pem"    // signing certificate, then its chain
	FileKey       = "ca-key.pem"     // signing key
	FileBundle    = "root-certs.pem" // every trusted root
)

// DirStore keeps the material as three PEM files in a directory (mode 0700),
// each written with mode 0600 through a temporary file and a rename.
type DirStore struct {
	dir string
}

var _ Store = (*DirStore)(nil)

// NewDirStore returns a store in dir; the directory is made on first Save.
func NewDirStore(dir string) *DirStore { return &DirStore{dir: dir} }

// Load implements Store. It refuses a key file that group or others may
// read.
func (s *DirStore) Load(_ context.Context) (Material, error) {
	var m Material
	files := []struct {
		name string
		dst  *[]byte
	}{{FileCertChain, &m.CertChainPEM}, {FileKey, &m.KeyPEM}, {FileBundle, &m.BundlePEM}}
	missing := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(s.dir, f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing++
			continue
		case err != nil:
			return Material{}, fmt.Errorf("ca: store %s: %w", s.dir, err)
		}
		*f.dst = b
	}
	switch missing {
	case 0:
	case len(files):
		return Material{}, fmt.Errorf("%w in %s", ErrNotFound, s.dir)
	default:
		return Material{}, fmt.Errorf("ca: store %s is incomplete: want %s, %s and %s", s.dir, FileCertChain, FileKey, FileBundle)
	}
	st, err := os.Stat(filepath.Join(s.dir, FileKey))
	if err != nil {
		return Material{}, fmt.Errorf("ca: store %s: %w", s.dir, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Material{}, fmt.Errorf("ca: store %s: %s has mode %v, want 0600", s.dir, FileKey, st.Mode().Perm())
	}
	return m, nil
}

// Save implements Store. Each file is replaced atomically; the key is
// written first so that a crash leaves the old certificate or a matching
// pair.
func (s *DirStore) Save(_ context.Context, m Material) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("ca: store %s: %w", s.dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{FileKey, m.KeyPEM}, {FileCertChain, m.CertChainPEM}, {FileBundle, m.BundlePEM}} {
		if err := writeFileAtomic(filepath.Join(s.dir, f.name), f.data); err != nil {
			return fmt.Errorf("ca: store %s: %w", s.dir, err)
		}
	}
	return nil
}

// writeFileAtomic writes data to a 0600 temporary file beside path, syncs
// it and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// After a successful rename the temporary name is gone and Remove
	// fails harmlessly.
	defer func() { _ = os.Remove(tmp.Name()) }()
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
