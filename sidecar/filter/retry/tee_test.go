package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// source is a client's request body as a server gives it: Read blocks
// until the client sends (a pipe), reads fail once it is closed, and it
// fails the test when two reads overlap.
type source struct {
	pr      *io.PipeReader
	pw      *io.PipeWriter
	inRead  atomic.Int32
	entered chan struct{} // one value per Read called
	closed  atomic.Bool
	overlap atomic.Bool
}

func newSource() *source {
	pr, pw := io.Pipe()
	return &source{pr: pr, pw: pw, entered: make(chan struct{}, 1024)}
}

func (s *source) Read(p []byte) (int, error) {
	if s.inRead.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.inRead.Add(-1)
	s.entered <- struct{}{}
	return s.pr.Read(p)
}

func (s *source) Close() error {
	s.closed.Store(true)
	return s.pr.Close()
}

// send is the client sending b (returns once the pump has read it all);
// it may run on another goroutine than the test's.
func (s *source) send(t *testing.T, b string) {
	t.Helper()
	if _, err := s.pw.Write([]byte(b)); err != nil {
		t.Errorf("client write: %v", err)
	}
}

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

// pendingRead starts a Read on r and returns where its outcome arrives.
func pendingRead(r io.Reader) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 16))
		done <- err
	}()
	return done
}

func TestTeeReplaysAPartlySentBody(t *testing.T) {
	src := newSource()
	tee := NewTee(src, 64)
	defer func() { _ = tee.Close() }()
	ctx := t.Context()

	first := tee.Try(ctx)
	go src.send(t, "hello ")
	if got := readN(t, first, 6); got != "hello " {
		t.Fatalf("first try read %q", got)
	}
	// The first try waits for more when it is abandoned (its transport
	// closes its body): the pending Read returns, the client's body stays
	// open.
	pending := pendingRead(first)
	_ = first.Close()
	if err := <-pending; !errors.Is(err, errTryEnded) {
		t.Fatalf("abandoned try's Read: %v, want errTryEnded", err)
	}
	if src.closed.Load() {
		t.Fatal("closing a try's body closed the client's body")
	}
	b, ok := tee.AfterFailedTry()
	if !ok || b != nil {
		t.Fatalf("after a partly read try: %v %v, want a new Try", b, ok)
	}

	second := tee.Try(ctx)
	go func() {
		src.send(t, "world")
		_ = src.pw.Close()
	}()
	all, err := io.ReadAll(second)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("second try read %q, %v; want the whole body", all, err)
	}
	if src.overlap.Load() {
		t.Error("two reads of the client's body at once")
	}
	b, ok = tee.AfterFailedTry()
	if !ok || b == nil || b.Len() != 11 {
		t.Fatalf("after the body ended: %v %v, want the copy", b, ok)
	}
	if got, _ := io.ReadAll(b.Reader()); string(got) != "hello world" {
		t.Errorf("copy %q", got)
	}
}

func TestTeeReadUnderWayWhenATryIsAbandoned(t *testing.T) {
	src := newSource()
	tee := NewTee(src, 64)
	defer func() { _ = tee.Close() }()

	ctx, cancel := context.WithCancel(t.Context())
	first := tee.Try(ctx)
	pending := pendingRead(first) // the pump now waits for the client
	cancel()                      // the try's deadline, say
	if err := <-pending; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read of a try whose context ended: %v", err)
	}
	// The pump's read is still under way; its bytes go to the next try.
	second := tee.Try(t.Context())
	go func() {
		src.send(t, "abc")
		src.send(t, "def")
		_ = src.pw.Close()
	}()
	all, err := io.ReadAll(second)
	if err != nil || string(all) != "abcdef" {
		t.Fatalf("second try read %q, %v", all, err)
	}
	if _, err := first.Read(make([]byte, 1)); !errors.Is(err, errTryEnded) {
		t.Errorf("superseded try's Read: %v", err)
	}
	if src.overlap.Load() {
		t.Error("two reads of the client's body at once")
	}
}

func TestTeeOverTheLimit(t *testing.T) {
	body := strings.Repeat("x", 3*maxRead) // several reads
	src := newSource()
	tee := NewTee(src, int64(maxRead))
	defer func() { _ = tee.Close() }()
	go func() {
		src.send(t, body)
		_ = src.pw.Close()
	}()
	first := tee.Try(t.Context())
	// The try streams the whole body though no copy is kept of it all.
	all, err := io.ReadAll(first)
	if err != nil || string(all) != body {
		t.Fatalf("read %d bytes, %v; want %d", len(all), err, len(body))
	}
	if b, ok := tee.AfterFailedTry(); ok || b != nil {
		t.Errorf("over the limit: %v %v, want no retry", b, ok)
	}
	if _, err := tee.Try(t.Context()).Read(make([]byte, 1)); !errors.Is(err, errOverLimit) {
		t.Errorf("a try over the limit read: %v", err)
	}
	tee.mu.Lock()
	kept := cap(tee.buf)
	tee.mu.Unlock()
	if kept > 2*maxRead {
		t.Errorf("over the limit the copy holds %d bytes", kept)
	}
}

func TestTeePartlyReadOverTheLimit(t *testing.T) {
	src := newSource()
	tee := NewTee(src, 4)
	defer func() { _ = tee.Close() }()
	go src.send(t, "hello")
	if got := readN(t, tee.Try(t.Context()), 5); got != "hello" {
		t.Fatalf("read %q", got)
	}
	if b, ok := tee.AfterFailedTry(); ok || b != nil {
		t.Errorf("5 bytes read with limit 4: %v %v, want no retry", b, ok)
	}
}

func TestTeeClientBodyFails(t *testing.T) {
	src := newSource()
	tee := NewTee(src, 64)
	defer func() { _ = tee.Close() }()
	gone := errors.New("client went away")
	go func() {
		src.send(t, "he")
		_ = src.pw.CloseWithError(gone)
	}()
	r := tee.Try(t.Context())
	got, err := io.ReadAll(r)
	if string(got) != "he" || !errors.Is(err, gone) {
		t.Fatalf("read %q, %v; want the client's error", got, err)
	}
	if b, ok := tee.AfterFailedTry(); ok || b != nil {
		t.Errorf("after the client's body failed: %v %v, want no retry", b, ok)
	}
}

func TestTeeNothingRead(t *testing.T) {
	src := &closeCounter{Reader: strings.NewReader("hello")}
	tee := NewTee(src, 10)
	_ = tee.Try(t.Context()).Close() // a connect failure
	if b, ok := tee.AfterFailedTry(); !ok || b != nil {
		t.Fatalf("after a try that read nothing: %v %v", b, ok)
	}
	if got, _ := io.ReadAll(tee.Try(t.Context())); string(got) != "hello" {
		t.Fatalf("next try read %q", got)
	}
	_ = tee.Close()
	if src.closed != 0 {
		t.Errorf("Close with no read under way closed the client's body %d times", src.closed)
	}
}

// Close while the pump waits for the client: the client's body is closed,
// which ends the read, and Close returns once the pump has; a try's
// pending Read returns.
func TestTeeCloseStopsThePump(t *testing.T) {
	src := newSource()
	tee := NewTee(src, 64)
	r := tee.Try(t.Context())
	go src.send(t, "a")
	if got := readN(t, r, 1); got != "a" {
		t.Fatalf("read %q", got)
	}
	<-src.entered // the read that gave "a"
	pending := pendingRead(r)
	<-src.entered // the pump waits for the client
	if err := tee.Close(); err != nil {
		t.Fatal(err)
	}
	if !src.closed.Load() {
		t.Error("Close with a read under way left the client's body open")
	}
	if src.inRead.Load() != 0 {
		t.Error("Close returned while the pump was still reading")
	}
	if err := <-pending; !errors.Is(err, errTryEnded) {
		t.Errorf("pending Read after Close: %v", err)
	}
	if _, err := tee.Try(t.Context()).Read(make([]byte, 1)); !errors.Is(err, errTryEnded) {
		t.Errorf("a try after Close read: %v", err)
	}
}

// Many tries, each abandoned at a random point, while the client sends:
// the last one still gets the body byte for byte, and the client's body
// is never read by two at once (run with -race).
func TestTeeManyAbandonedTries(t *testing.T) {
	var body bytes.Buffer
	for i := range 2000 {
		body.WriteString(strings.Repeat(string(rune('a'+i%26)), i%37+1))
	}
	want := body.String()
	src := newSource()
	tee := NewTee(src, int64(len(want)+1))
	defer func() { _ = tee.Close() }()
	go func() {
		for rest := want; rest != ""; {
			n := min(len(rest), 700)
			src.send(t, rest[:n])
			rest = rest[n:]
		}
		_ = src.pw.Close()
	}()
	var wg sync.WaitGroup
	for i := range 20 {
		r := tee.Try(t.Context())
		wg.Go(func() {
			for {
				if _, err := r.Read(make([]byte, 100+i*50)); err != nil {
					return
				}
			}
		})
		if _, ok := tee.AfterFailedTry(); !ok {
			t.Fatal("not replayable within the limit")
		}
	}
	last := tee.Try(t.Context())
	all, err := io.ReadAll(last)
	wg.Wait()
	if err != nil || string(all) != want {
		t.Fatalf("last try read %d bytes (%v), want %d byte for byte", len(all), err, len(want))
	}
	if src.overlap.Load() {
		t.Error("two reads of the client's body at once")
	}
}

// restBody is a request body that may say it was received whole (a
// restReader, as h2server's once the client's END_STREAM came); it counts
// the calls the Tee makes.
type restBody struct {
	data  string
	whole bool // ReadRest gives the body
	off   int
	reads int
	rests int
}

func (b *restBody) ReadRest() ([]byte, bool) {
	b.rests++
	if !b.whole {
		return nil, false
	}
	rest := []byte(b.data[b.off:])
	b.off = len(b.data)
	return rest, true
}

func (b *restBody) Read(p []byte) (int, error) {
	b.reads++
	if b.off == len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *restBody) Close() error { return nil }

// TestTeeTakesAWholeBody: a body received whole is the copy at the first
// try's first read, with no pump and no read of the body (a gRPC unary
// call); one whose end has not come is read by the pump, as before; both
// are replayed whole, unless over the limit.
func TestTeeTakesAWholeBody(t *testing.T) {
	tests := []struct {
		name        string
		whole       bool
		limit       int64
		wantPump    bool
		wantReplay  bool
		wantSrcRead bool
	}{
		{name: "received whole", whole: true, limit: 64, wantReplay: true},
		{name: "end still to come", whole: false, limit: 64, wantPump: true, wantReplay: true, wantSrcRead: true},
		{name: "whole over the limit", whole: true, limit: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &restBody{data: "hello", whole: tc.whole}
			tee := NewTee(src, tc.limit)
			first := tee.Try(t.Context())
			if got, err := io.ReadAll(first); err != nil || string(got) != "hello" {
				t.Fatalf("first try read %q, %v; want hello", got, err)
			}
			tee.mu.Lock()
			pumped := tee.pumping
			tee.mu.Unlock()
			body, replayable := tee.AfterFailedTry()
			if err := tee.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if pumped != tc.wantPump {
				t.Errorf("pump started: %v, want %v", pumped, tc.wantPump)
			}
			if (src.reads > 0) != tc.wantSrcRead || src.rests != 1 {
				t.Errorf("body: %d reads, %d ReadRest; want reads: %v, one ReadRest", src.reads, src.rests, tc.wantSrcRead)
			}
			if replayable != tc.wantReplay || (body != nil) != tc.wantReplay {
				t.Fatalf("AfterFailedTry: %v, %v; want replayable %v", body, replayable, tc.wantReplay)
			}
			if body != nil {
				if got, _ := io.ReadAll(body.Reader()); string(got) != "hello" {
					t.Errorf("replayed body %q, want hello", got)
				}
			}
		})
	}
}

// TestTeeWholeBodyEndsWithItsLastBytes: the try reading a body received
// whole gets its end with its last bytes, so an HTTP/2 transport ends the
// stream on its last DATA frame.
func TestTeeWholeBodyEndsWithItsLastBytes(t *testing.T) {
	tee := NewTee(&restBody{data: "hello", whole: true}, 64)
	defer func() { _ = tee.Close() }()
	n, err := tee.Try(t.Context()).Read(make([]byte, 16))
	if n != 5 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read: %d, %v; want 5, io.EOF", n, err)
	}
}

// TestTeeReaderReadRest: a try's reader gives a body received whole all
// at once (a transport frames it with the head, h2client), and again to
// the next try; a body whose end has not come is not (its reader is left
// as it was).
func TestTeeReaderReadRest(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprint("whole=", whole), func(t *testing.T) {
			src := &restBody{data: "hello", whole: whole}
			tee := NewTee(src, 64)
			defer func() { _ = tee.Close() }()
			for try := range 2 {
				r := tee.Try(t.Context())
				rest, ok := r.(interface{ ReadRest() ([]byte, bool) }).ReadRest()
				if ok != whole || whole && string(rest) != "hello" {
					t.Fatalf("try %d: ReadRest %q, %v; want whole %v", try, rest, ok, whole)
				}
				if src.reads > 0 {
					t.Fatalf("try %d: the client's body was read", try)
				}
				if !whole {
					return
				}
				if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("try %d: Read after ReadRest: %d, %v; want io.EOF", try, n, err)
				}
			}
		})
	}
}
