package identity

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/sidecar/internal/testca"
)

// runManager starts m.Run(ctx, ca) and waits for its first certificate.
func runManager(t *testing.T, ctx context.Context, m *Manager, ca CA) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx, ca); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { <-done })
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
}

// echoServer accepts mTLS connections with cfg and echoes lines; it
// records the serial of each client certificate it saw.
type echoServer struct {
	lis     net.Listener
	mu      sync.Mutex
	serials []string
	wg      sync.WaitGroup
}

func startEcho(t *testing.T, cfg *tls.Config) *echoServer {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{lis: lis}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func(conn *tls.Conn) {
				defer s.wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				if conn.HandshakeContext(context.Background()) != nil {
					return
				}
				s.mu.Lock()
				s.serials = append(s.serials, serial(conn.ConnectionState().PeerCertificates[0].SerialNumber))
				s.mu.Unlock()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := conn.Write([]byte(line)); err != nil {
						return
					}
				}
			}(c.(*tls.Conn))
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); s.wg.Wait() })
	return s
}

type echoConn struct {
	*tls.Conn
	r *bufio.Reader
}

func dialEcho(ctx context.Context, addr string, cfg *tls.Config) (*echoConn, error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*tls.Conn)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &echoConn{Conn: conn, r: bufio.NewReader(conn)}, nil
}

func (c *echoConn) roundTrip(msg string) error {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return &net.OpError{Op: "echo", Err: net.UnknownNetworkError(got)}
	}
	return nil
}

// TestRotationKeepsLiveConnections: certificates live 2 s and renew at about
// half. A connection made before the rotations stays open and keeps
// working after both sides rotated (and after the first certificates
// expired); new handshakes present the new certificates.
func TestRotationKeepsLiveConnections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca := testca.New(t, "root", 2*time.Second)
	server, err := New(paymentID, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	client, err := New(frontendID, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, ctx, server, ca)
	runManager(t, ctx, client, ca)
	srv := startEcho(t, ServerTLSConfig(server, server, td, nil))
	clientCfg := ClientTLSConfig(client, client, []spiffeid.ID{paymentID}, nil)

	old, err := dialEcho(ctx, srv.lis.Addr().String(), clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.roundTrip("before"); err != nil {
		t.Fatal(err)
	}
	firstServerSerial := serial(old.ConnectionState().PeerCertificates[0].SerialNumber)
	firstClient := client.Status()

	// Wait for two rotations of each side and for the first certificates
	// to expire, exercising the old connection all along.
	seen := map[string]bool{}
	eventually(t, 10*time.Second, "two rotations and the first certificates' expiry", func() bool {
		if err := old.roundTrip("during"); err != nil {
			t.Fatalf("live connection broke during rotation: %v", err)
		}
		seen[server.Status().Serial+"/"+client.Status().Serial] = true
		return len(seen) >= 3 && time.Now().After(firstClient.NotAfter)
	})
	if err := old.roundTrip("after"); err != nil {
		t.Fatalf("live connection broke after rotation: %v", err)
	}

	fresh, err := dialEcho(ctx, srv.lis.Addr().String(), clientCfg)
	if err != nil {
		t.Fatalf("new handshake after rotation: %v", err)
	}
	defer fresh.Close()
	if err := fresh.roundTrip("new"); err != nil {
		t.Fatal(err)
	}
	if got := serial(fresh.ConnectionState().PeerCertificates[0].SerialNumber); got == firstServerSerial {
		t.Error("new handshake got the server's first certificate")
	}
	srv.mu.Lock()
	lastClientSerial := srv.serials[len(srv.serials)-1]
	srv.mu.Unlock()
	if lastClientSerial == firstClient.Serial {
		t.Error("new handshake presented the client's first certificate")
	}
	if st := client.Status(); st.Failures != 0 {
		t.Errorf("%d renewal failures with the CA up", st.Failures)
	}
}

// rotatingCA plays the mesh CA through a root rotation: signer and bundle
// change independently, as AddRoot / RotateSigner / RemoveRoot make them.
type rotatingCA struct {
	mu     sync.Mutex
	signer *testca.CA
	roots  []*x509.Certificate
}

func (r *rotatingCA) set(signer *testca.CA, roots ...*x509.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signer, r.roots = signer, roots
}

func (r *rotatingCA) Sign(ctx context.Context, csrPEM []byte, validity time.Duration) ([]*x509.Certificate, []*x509.Certificate, error) {
	r.mu.Lock()
	signer, roots := r.signer, r.roots
	r.mu.Unlock()
	chain, _, err := signer.Sign(ctx, csrPEM, validity)
	return chain, roots, err
}

// TestRootRotationUnderHandshakes walks the three-step root rotation of
// control-plane/ca's doc while a client makes new mTLS handshakes without
// pause: not one may fail.
func TestRootRotationUnderHandshakes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oldCA := testca.New(t, "old root", 1500*time.Millisecond)
	newCA := testca.New(t, "new root", 1500*time.Millisecond)
	ca := &rotatingCA{}
	ca.set(oldCA, oldCA.Root)
	server, err := New(paymentID, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	client, err := New(frontendID, WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, ctx, server, ca)
	runManager(t, ctx, client, ca)
	srv := startEcho(t, ServerTLSConfig(server, server, td, nil))
	clientCfg := ClientTLSConfig(client, client, []spiffeid.ID{paymentID}, nil)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for loadCtx.Err() == nil {
			c, err := dialEcho(loadCtx, srv.lis.Addr().String(), clientCfg)
			if err == nil {
				err = c.roundTrip("x")
				_ = c.Close()
			}
			switch {
			case err == nil:
				ok.Add(1)
			case loadCtx.Err() == nil:
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	signedBy := func(m *Manager, root *x509.Certificate) bool {
		s, err := m.GetX509SVID()
		if err != nil {
			return false
		}
		_, _, err = x509svid.Verify(s.Certificates, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}))
		return err == nil
	}
	both := func(f func(*Manager) bool) func() bool {
		return func() bool { return f(server) && f(client) }
	}
	// Step 1: trust the new root too; signing unchanged.
	ca.set(oldCA, oldCA.Root, newCA.Root)
	eventually(t, 10*time.Second, "both sides trusting {old, new}", both(func(m *Manager) bool { return m.Status().Roots == 2 }))
	// Step 2: sign with the new root.
	ca.set(newCA, oldCA.Root, newCA.Root)
	eventually(t, 10*time.Second, "both sides holding new-root certificates", both(func(m *Manager) bool { return signedBy(m, newCA.Root) }))
	// Step 3: retire the old root.
	ca.set(newCA, newCA.Root)
	eventually(t, 10*time.Second, "both sides trusting {new} only", both(func(m *Manager) bool { return m.Status().Roots == 1 }))
	time.Sleep(200 * time.Millisecond) // a few more handshakes on the final state
	stopLoad()
	<-loadDone
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Fatalf("handshakes across the root rotation: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("%d handshakes across the root rotation, none failed", ok.Load())
}

// TestCADown: the CA goes down; the Manager keeps its certificate, retries
// with growing delays, and renews as soon as the CA is back, with no
// restart. Past expiry it stops presenting the certificate.
func TestCADown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca := testca.New(t, "root", 3*time.Second)
	m, err := New(paymentID, WithLogger(discard()), WithBackoff(50*time.Millisecond, 400*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, ctx, m, ca)
	first := m.Status()
	ca.Down.Store(true)
	downAt := time.Now()
	var calls []time.Time
	eventually(t, 10*time.Second, "5 retries while the CA is down", func() bool {
		calls = nil
		for _, c := range ca.CallTimes() {
			if c.After(downAt) {
				calls = append(calls, c)
			}
		}
		return len(calls) >= 5
	})
	// Still serving with the current certificate.
	s, err := m.GetX509SVID()
	if err != nil || serial(s.Certificates[0].SerialNumber) != first.Serial {
		t.Fatalf("certificate while the CA is down: %v, %v; want serial %s", s, err, first.Serial)
	}
	if time.Now().Before(first.NotAfter) {
		peer := newManager(t, ca2(ca), frontendID)
		res := handshake(t, ServerTLSConfig(m, m, td, nil), ClientTLSConfig(peer, peer, []spiffeid.ID{paymentID}, nil))
		if res.serverErr != nil || res.clientErr != nil {
			t.Fatalf("handshake with the current certificate while the CA is down: %v / %v", res.serverErr, res.clientErr)
		}
	}
	gaps := make([]time.Duration, len(calls)-1)
	for i := range gaps {
		gaps[i] = calls[i+1].Sub(calls[i])
	}
	if gaps[len(gaps)-1] < 2*gaps[0] {
		t.Errorf("retry delays %v do not back off", gaps)
	}
	if gaps[0] < 30*time.Millisecond {
		t.Errorf("first retry after %s, want about 50ms", gaps[0])
	}
	if m.Status().Failures < 4 {
		t.Errorf("Failures = %d, want >= 4", m.Status().Failures)
	}
	// Let it expire: an expired certificate is no longer presented.
	eventually(t, 10*time.Second, "the certificate's expiry", func() bool { return time.Now().After(first.NotAfter) })
	if _, err := m.GetX509SVID(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("GetX509SVID after expiry = %v, want an expired error", err)
	}
	// The CA is back: renewal succeeds without a restart.
	ca.Down.Store(false)
	eventually(t, 5*time.Second, "renewal once the CA is back", func() bool {
		_, err := m.GetX509SVID()
		return err == nil && m.Status().Serial != first.Serial
	})
}

// ca2 is a CA that signs with the same root as ca but is always up.
func ca2(ca *testca.CA) *testca.CA {
	return ca.Clone(time.Hour)
}
