package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry"
)

// DefaultPollInterval is how often a Source reads its file. Reading and
// hashing a mesh file costs microseconds to a few milliseconds (into one
// buffer kept between reads: a poll allocates nothing); polling the content (rather than
// watching the directory or mtimes) sees every edit however the editor saves
// it: in place, by atomic rename, through a symlink swap (ConfigMap volumes),
// and within one mtime tick.
const DefaultPollInterval = 100 * time.Millisecond

// Source is a registry.Source that follows one mesh file.
type Source struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	onError  func(error)
}

var _ registry.Source = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// WithPollInterval sets how often the file is read (DefaultPollInterval).
func WithPollInterval(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.interval = d
		}
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithErrorHandler is called, from Run's goroutine, with each new content's
// error (an Errors, or the read error), and with nil when a good content
// follows a bad one.
func WithErrorHandler(f func(error)) Option { return func(s *Source) { s.onError = f } }

// New returns a Source for the file at path. It reads nothing until Run.
func New(path string, opts ...Option) *Source {
	s := &Source{path: path, interval: DefaultPollInterval, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run reads the file now and then every poll interval, and calls push with
// the state of every content that parses, once per distinct content. A
// content that does not parse is logged (each error with file, line and
// field) and reported to the error handler once; the last good state stays
// in force until a good content replaces it. A missing or unreadable file is
// treated the same way. Run returns nil when ctx is done.
func (s *Source) Run(ctx context.Context, push func(model.State)) error {
	var last [sha256.Size]byte
	seen, failing := false, false
	memo := newDocMemo()
	var lastReadErr string
	// One buffer for every read: an unchanged file (nearly every poll)
	// allocates nothing, where os.ReadFile's copy of a large mesh file
	// ten times a second was most of the control plane's garbage between
	// pushes (2.2 MB for 10,000 WorkloadEntries: 22 MB/s), and each GC
	// marks every connected proxy's state.
	var buf bytes.Buffer
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		err := readFile(s.path, &buf)
		switch {
		case err != nil:
			if err.Error() != lastReadErr {
				lastReadErr = err.Error()
				failing = true
				s.log.Error("registry file unreadable; keeping the last good state", "file", s.path, "err", err)
				s.report(err)
			}
		default:
			lastReadErr = ""
			sum := sha256.Sum256(buf.Bytes())
			if !seen || sum != last {
				seen, last = true, sum
				// parse gets its own copy: buf is read into again.
				st, perr := parse(s.path, bytes.Clone(buf.Bytes()), memo)
				memo.rotate()
				if perr != nil {
					failing = true
					s.logParseError(perr)
					s.report(perr)
				} else {
					if failing {
						failing = false
						s.report(nil)
					}
					s.log.Info("registry file loaded", "file", s.path,
						"services", len(st.Services), "workloads", len(st.Workloads))
					push(st)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readFile reads the file at path into buf, replacing its content and
// keeping its storage.
func readFile(path string, buf *bytes.Buffer) error {
	buf.Reset()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		buf.Grow(int(fi.Size()) + bytes.MinRead) // ReadFrom needs MinRead spare
	}
	_, err = buf.ReadFrom(f) // an *os.PathError, as os.ReadFile's
	return err
}

func (s *Source) logParseError(err error) {
	var errs Errors
	if !errors.As(err, &errs) {
		s.log.Error("registry file rejected; keeping the last good state", "file", s.path, "err", err)
		return
	}
	for _, e := range errs {
		s.log.Error("registry file rejected; keeping the last good state", "err", e.Error())
	}
}

func (s *Source) report(err error) {
	if s.onError != nil {
		s.onError(err)
	}
}
