package h2server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pipeClient is a client on a net.Pipe: a server's write blocks until the
// client reads it, so what the server does with a peer that reads slowly,
// or nothing, is exact.
type pipeClient struct {
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	served chan struct{} // closed when ServeConn returned
}

// servePipe serves one connection on a pipe; the client has sent its
// preface and SETTINGS and read the server's SETTINGS, WINDOW_UPDATE and
// its SETTINGS ACK.
func servePipe(t *testing.T, s *Server) *pipeClient {
	t.Helper()
	return servePipeConn(t, s, func(c net.Conn) net.Conn { return c })
}

// servePipeConn is servePipe with the server's end of the pipe wrapped.
func servePipeConn(t *testing.T, s *Server, wrap func(net.Conn) net.Conn) *pipeClient {
	t.Helper()
	cli, pipeSrv := net.Pipe()
	srv := wrap(pipeSrv)
	_ = cli.SetDeadline(time.Now().Add(waitFor))
	pc := &pipeClient{c: cli, fr: http2.NewFramer(cli, cli), served: make(chan struct{})}
	pc.enc = hpack.NewEncoder(&pc.hbuf)
	pc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() {
		s.ServeConn(context.Background(), srv, nil)
		close(pc.served)
	}()
	t.Cleanup(func() {
		_ = cli.Close()
		_ = s.Close()
		select {
		case <-pc.served:
		case <-time.After(waitFor):
			t.Error("ServeConn did not return after Close")
		}
	})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = io.WriteString(cli, http2.ClientPreface)
		_ = pc.fr.WriteSettings()
	}()
	defer func() { <-wrote }()
	for acked := false; !acked; {
		f, err := pc.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		acked = ok && sf.IsAck()
	}
	// Until the write of that ACK has returned: whatever the server
	// writes next starts a write of its own.
	deadline := time.Now().Add(waitFor)
	for s.anyConnWriting() {
		if time.Now().After(deadline) {
			t.Fatal("the server's write of its SETTINGS ACK did not return")
		}
		time.Sleep(time.Millisecond)
	}
	return pc
}

func (pc *pipeClient) block(kv ...string) []byte {
	pc.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = pc.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), pc.hbuf.Bytes()...)
}

// waitServed fails the test unless the server ends the connection.
func (pc *pipeClient) waitServed(t *testing.T) {
	t.Helper()
	select {
	case <-pc.served:
	case <-time.After(waitFor):
		t.Fatal("the connection is still served")
	}
}

// TestControlFloodClosesTheConnection: a peer that makes the server
// answer (PING, SETTINGS) or reset streams and reads nothing is dropped
// once more than maxQueuedControlFrames wait for it (ping, settings and
// reset floods: CVE-2019-9512, -9515, -9514); the read loop, which queues
// the answers to the connection's writer, never waits for the peer to
// read them (it did: the connection stayed, blocked in the write of the
// first answer).
func TestControlFloodClosesTheConnection(t *testing.T) {
	tests := []struct {
		name string
		send func(pc *pipeClient, i int) error
	}{
		{"PING", func(pc *pipeClient, i int) error { return pc.fr.WritePing(false, [8]byte{byte(i)}) }},
		{"SETTINGS", func(pc *pipeClient, _ int) error { return pc.fr.WriteSettings() }},
		{"streams reset by the server", func(pc *pipeClient, i int) error {
			// An upper-case field name: a stream error, reset.
			blk := pc.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/", "X-Upper", "1")
			return pc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: blk, EndStream: true, EndHeaders: true}) //nolint:gosec // small
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := servePipe(t, &Server{Handler: http.HandlerFunc(okHandler)})
			sent := make(chan int, 1)
			go func() {
				i := 0
				for ; i < 2*maxQueuedControlFrames; i++ {
					if tc.send(pc, i) != nil {
						break // the server closed the connection
					}
				}
				sent <- i
			}()
			pc.waitServed(t)
			if n := <-sent; n <= maxQueuedControlFrames {
				t.Fatalf("closed after %d frames, want more than %d queued", n, maxQueuedControlFrames)
			}
		})
	}
}

// TestWriteTimeout: a write the peer does not take within WriteTimeout
// (it reads nothing, or so slowly that the write does not complete) ends
// the connection; a stream that writes nothing for longer than that (an
// idle gRPC stream, a tunnel) and an idle connection are not ended.
func TestWriteTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	get := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/idle" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-release
		}
		_, _ = w.Write(make([]byte, 32<<10))
	})
	tests := []struct {
		name   string
		path   string
		client func(t *testing.T, pc *pipeClient) // after sending the request
		closed bool
	}{
		{"a peer that reads nothing", "/", func(*testing.T, *pipeClient) {}, true},
		{"a peer that reads a byte at a time", "/", func(_ *testing.T, pc *pipeClient) {
			go func() {
				b := make([]byte, 1)
				for {
					if _, err := pc.c.Read(b); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}, true},
		{"an idle stream, then its response", "/idle", func(t *testing.T, pc *pipeClient) {
			readHead(t, pc)
			time.Sleep(3 * timeout) // idle past the write timeout
			close(release)
			readBody(t, pc, 32<<10)
			// The connection was idle past the write timeout too.
			time.Sleep(3 * timeout)
			pingPipe(t, pc)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := servePipe(t, &Server{WriteTimeout: timeout, Handler: handler})
			blk := pc.block(append(get[:len(get)-1:len(get)-1], tc.path)...)
			// The read loop takes it (a pipe's write waits for the read).
			if err := pc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			tc.client(t, pc)
			if tc.closed {
				pc.waitServed(t)
				return
			}
			select {
			case <-pc.served:
				t.Fatal("the connection was closed")
			default:
			}
		})
	}
}

func readHead(t *testing.T, pc *pipeClient) {
	t.Helper()
	for {
		f, err := pc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the response's HEADERS: %v", err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
			return
		}
	}
}

// readBody reads stream 1's DATA until END_STREAM; it wants n bytes.
func readBody(t *testing.T, pc *pipeClient, n int) {
	t.Helper()
	got := 0
	for {
		f, err := pc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the body after %d bytes: %v", got, err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			got += len(d.Data())
			if d.StreamEnded() {
				break
			}
		}
	}
	if got != n {
		t.Fatalf("body of %d bytes, want %d", got, n)
	}
}

// pingPipe sends a PING and reads until its ACK.
func pingPipe(t *testing.T, pc *pipeClient) {
	t.Helper()
	if err := pc.fr.WritePing(false, [8]byte{'p'}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := pc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the PING ACK: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == [8]byte{'p'} {
			return
		}
	}
}

// anyConnQueued reports whether a connection has frames queued that no
// write has taken yet.
func (s *Server) anyConnQueued() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.mu.Lock()
		n := c.Buffered()
		c.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// TestConnectionErrorEndsWhenItsGoAwayFails: the read loop that writes a
// connection error's GOAWAY itself returns when that write fails, though
// a handler queued its response meanwhile (it waited for a write that
// nobody would make, and the connection was never closed: found by
// FuzzServeConn).
func TestConnectionErrorEndsWhenItsGoAwayFails(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		_, _ = io.WriteString(w, "ok")
	})}
	pc := servePipe(t, s)
	get := pc.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	if err := pc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: get, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// A PING on a stream is a connection error: the read loop writes
	// GOAWAY, to a client that does not read.
	if err := pc.fr.WriteRawFrame(http2.FramePing, 0, 1, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the GOAWAY's write", s.anyConnWriting)
	close(release)
	waitUntil(t, "the handler's response queued", s.anyConnQueued)
	_ = pc.c.Close() // the GOAWAY's write fails
	pc.waitServed(t)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// deadlineConn records the write deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	mu   sync.Mutex
	last time.Time
	sets int
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.last, d.sets = t, d.sets+1
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}

// TestNoWriteDeadlineWhileIdle: the write timeout's deadline is set for a
// write and cleared once nothing more is pending, so none expires while
// the connection is idle (crypto/tls writes from a Read too: the answer
// to a peer's KeyUpdate failed with an expired deadline, and broke the
// connection).
func TestNoWriteDeadlineWhileIdle(t *testing.T) {
	var dc *deadlineConn
	s := &Server{WriteTimeout: time.Hour, Handler: http.HandlerFunc(okHandler)}
	pc := servePipeConn(t, s, func(c net.Conn) net.Conn { dc = &deadlineConn{Conn: c}; return dc })
	blk := pc.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	if err := pc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	readHead(t, pc)
	readBody(t, pc, 2)
	waitUntil(t, "the response's write to return", func() bool { return !s.anyConnWriting() })
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.sets == 0 || !dc.last.IsZero() {
		t.Fatalf("write deadline %v after %d settings, want none while idle", dc.last, dc.sets)
	}
}
