package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/sidecar/internal/testca"
)

// newManager returns a Manager for id with a certificate from ca.
func newManager(t testing.TB, ca CA, id spiffeid.ID, opts ...Option) *Manager {
	t.Helper()
	m, err := New(id, append([]Option{WithLogger(discard())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.renew(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	return m
}

type handshakeResult struct {
	serverErr, clientErr error
	serverSawPeer        spiffeid.ID // verified client ID, at the server
	clientSawPeer        spiffeid.ID // verified server ID, at the client
	alpn                 string
	version              uint16
}

// handshake runs one real TLS handshake over loopback and one echo round
// trip (in TLS 1.3 the client learns of a refused client certificate only
// when it reads).
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var res handshakeResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		raw, err := lis.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		conn := tls.Server(raw, serverCfg)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if res.serverErr = conn.HandshakeContext(ctx); res.serverErr != nil {
			return
		}
		res.serverSawPeer, res.serverErr = PeerID(conn.ConnectionState())
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err == nil {
			_, err = conn.Write([]byte(line))
		}
		if res.serverErr == nil {
			res.serverErr = err
		}
	}()
	d := tls.Dialer{Config: clientCfg}
	c, err := d.DialContext(ctx, "tcp", lis.Addr().String())
	if err != nil {
		res.clientErr = err
	} else {
		conn := c.(*tls.Conn)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		cs := conn.ConnectionState()
		res.alpn, res.version = cs.NegotiatedProtocol, cs.Version
		res.clientSawPeer, res.clientErr = PeerID(cs)
		if res.clientErr == nil {
			if _, err := conn.Write([]byte("ping\n")); err != nil {
				res.clientErr = err
			} else if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
				res.clientErr = err
			} else if line != "ping\n" {
				res.clientErr = err
			}
		}
		_ = conn.Close()
	}
	wg.Wait()
	return res
}

func TestMTLSHandshake(t *testing.T) {
	ca := testca.New(t, "mesh root", time.Hour)
	rogue := testca.New(t, "rogue root", time.Hour)
	evil := testca.New(t, "evil.example root", time.Hour)
	server := newManager(t, ca, paymentID)
	client := newManager(t, ca, frontendID)
	now := time.Now()
	expiredClient := ca.SVID(t, frontendID.String(), now.Add(-2*time.Hour), now.Add(-time.Hour))
	expiredServer := ca.SVID(t, paymentID.String(), now.Add(-2*time.Hour), now.Add(-time.Hour))
	otherTD := evil.SVID(t, "spiffe://evil.example/ns/shop/sa/frontend", now.Add(-time.Minute), now.Add(time.Hour))
	rogueClient := rogue.SVID(t, frontendID.String(), now.Add(-time.Minute), now.Add(time.Hour))
	rogueServer := rogue.SVID(t, paymentID.String(), now.Add(-time.Minute), now.Add(time.Hour))
	allowPayment := []spiffeid.ID{paymentID}

	tests := []struct {
		name          string
		serverSVID    x509svid.Source
		clientSVID    x509svid.Source
		clientBundle  x509bundle.Source
		allowed       []spiffeid.ID
		noClientCert  bool
		clientALPN    string // the client's one protocol (default h2)
		tweakClient   func(*tls.Config)
		tweakServer   func(*tls.Config)
		wantServerErr string // the refusing side's error says this
		wantClientErr string
		wantLog       string // the server's log says this
	}{
		{name: "valid mTLS between two identities", allowed: allowPayment},
		{name: "server ID is one of several allowed", allowed: []spiffeid.ID{cartID, paymentID}},
		{name: "expired client certificate", clientSVID: expiredClient, allowed: allowPayment, wantServerErr: "certificate has expired", wantClientErr: "remote error", wantLog: "certificate has expired"},
		{name: "expired server certificate", serverSVID: expiredServer, allowed: allowPayment, wantClientErr: "certificate has expired"},
		{
			name: "client certificate from another trust domain", clientSVID: otherTD, allowed: allowPayment,
			wantServerErr: `no trust bundle for trust domain "evil.example"`, wantClientErr: "remote error",
			wantLog: `peer_id=spiffe://evil.example/ns/shop/sa/frontend`,
		},
		{
			name: "client certificate from a rogue CA claiming a valid SPIFFE ID", clientSVID: rogueClient, allowed: allowPayment,
			wantServerErr: "certificate signed by unknown authority", wantClientErr: "remote error",
			wantLog: "peer_id=spiffe://cluster.local/ns/shop/sa/frontend",
		},
		{name: "server certificate from a rogue CA claiming the allowed ID", serverSVID: rogueServer, allowed: allowPayment, wantClientErr: "certificate signed by unknown authority"},
		{name: "server ID not in the allowed set", allowed: []spiffeid.ID{cartID}, wantClientErr: `unexpected ID "spiffe://cluster.local/ns/shop/sa/payment"`},
		{name: "empty allowed set", allowed: nil, wantClientErr: "unexpected ID"},
		{name: "client capped at TLS 1.2", allowed: allowPayment, tweakClient: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 }, wantServerErr: "unsupported versions"},
		{name: "client of the HTTP/1.1 pool", allowed: allowPayment, clientALPN: ALPNHTTP11},
		{name: "HTTP/1.1 client, server ID not in the allowed set", allowed: []spiffeid.ID{cartID}, clientALPN: ALPNHTTP11, wantClientErr: `unexpected ID "spiffe://cluster.local/ns/shop/sa/payment"`},
		{name: "client offering no ALPN protocol", allowed: allowPayment, tweakClient: func(c *tls.Config) { c.NextProtos, c.VerifyConnection = nil, nil }, wantServerErr: `ALPN "" negotiated, want one of ["h2" "http/1.1"]`},
		{name: "server not speaking h2", allowed: allowPayment, tweakServer: func(c *tls.Config) { c.NextProtos, c.VerifyConnection = nil, nil }, wantClientErr: `ALPN "" negotiated, want one of ["h2"]`},
		{name: "server not speaking http/1.1", allowed: allowPayment, clientALPN: ALPNHTTP11, tweakServer: func(c *tls.Config) { c.NextProtos, c.VerifyConnection = nil, nil }, wantClientErr: `ALPN "" negotiated, want one of ["http/1.1"]`},
		{name: "client without a certificate", allowed: allowPayment, noClientCert: true, wantServerErr: "client didn't provide a certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &bytes.Buffer{}
			var mu sync.Mutex
			serverLog := slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil))
			serverSVID, clientSVID, clientBundle := tc.serverSVID, tc.clientSVID, tc.clientBundle
			if serverSVID == nil {
				serverSVID = server
			}
			if clientSVID == nil {
				clientSVID = client
			}
			if clientBundle == nil {
				clientBundle = client
			}
			serverCfg := ServerTLSConfig(serverSVID, server, td, serverLog)
			alpn := tc.clientALPN
			if alpn == "" {
				alpn = ALPNH2
			}
			clientCfg := ClientTLSConfigALPN(clientSVID, clientBundle, tc.allowed, alpn, nil)
			if tc.noClientCert {
				clientCfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{ALPNH2}}
			}
			if tc.tweakServer != nil {
				tc.tweakServer(serverCfg)
			}
			if tc.tweakClient != nil {
				tc.tweakClient(clientCfg)
			}
			res := handshake(t, serverCfg, clientCfg)
			if tc.wantServerErr == "" && tc.wantClientErr == "" {
				if res.serverErr != nil || res.clientErr != nil {
					t.Fatalf("handshake failed: server %v, client %v", res.serverErr, res.clientErr)
				}
				if res.serverSawPeer != frontendID || res.clientSawPeer != paymentID {
					t.Errorf("peers: server saw %v, client saw %v", res.serverSawPeer, res.clientSawPeer)
				}
				if res.alpn != alpn || res.version != tls.VersionTLS13 {
					t.Errorf("ALPN %q version %x, want %q and TLS 1.3", res.alpn, res.version, alpn)
				}
				return
			}
			check := func(side string, err error, want string) {
				if want == "" {
					return
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s error = %v, want one saying %q", side, err, want)
				}
			}
			if res.serverErr == nil && res.clientErr == nil {
				t.Fatal("handshake succeeded, want it refused")
			}
			check("server", res.serverErr, tc.wantServerErr)
			check("client", res.clientErr, tc.wantClientErr)
			if tc.wantLog != "" {
				mu.Lock()
				l := logs.String()
				mu.Unlock()
				if !strings.Contains(l, "identity: refused peer certificate") || !strings.Contains(l, tc.wantLog) {
					t.Errorf("server log does not say %q: %s", tc.wantLog, l)
				}
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRootRotationInterop: during a root rotation the bundle holds the old
// and the new root, and SVIDs from either interoperate; a sidecar that
// trusts only the new root refuses an old-root SVID.
func TestRootRotationInterop(t *testing.T) {
	oldCA := testca.New(t, "old root", time.Hour)
	newCA := testca.New(t, "new root", time.Hour)
	both := []*x509.Certificate{oldCA.Root, newCA.Root}
	oldCA.SetRoots(both...)
	newCA.SetRoots(both...)
	a := newManager(t, oldCA, frontendID) // signed by the old root
	b := newManager(t, newCA, paymentID)  // signed by the new root
	for _, dir := range []struct {
		name           string
		server, client *Manager
		allowed        spiffeid.ID
	}{{"old-root client to new-root server", b, a, paymentID}, {"new-root client to old-root server", a, b, frontendID}} {
		t.Run(dir.name, func(t *testing.T) {
			res := handshake(t, ServerTLSConfig(dir.server, dir.server, td, nil), ClientTLSConfig(dir.client, dir.client, []spiffeid.ID{dir.allowed}, nil))
			if res.serverErr != nil || res.clientErr != nil {
				t.Fatalf("server %v, client %v", res.serverErr, res.clientErr)
			}
		})
	}
	t.Run("new root only refuses old-root SVIDs", func(t *testing.T) {
		if err := b.SetBundle([]*x509.Certificate{newCA.Root}); err != nil {
			t.Fatal(err)
		}
		res := handshake(t, ServerTLSConfig(b, b, td, nil), ClientTLSConfig(a, a, []spiffeid.ID{paymentID}, nil))
		if res.serverErr == nil || !strings.Contains(res.serverErr.Error(), "unknown authority") {
			t.Fatalf("server err = %v, want unknown authority", res.serverErr)
		}
	})
}
