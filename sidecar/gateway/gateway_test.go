package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/gateway"
	"github.com/weftmesh/weft/sidecar/inbound"
	"github.com/weftmesh/weft/sidecar/internal/xdstest"
	"github.com/weftmesh/weft/sidecar/router"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

const order = "spiffe://cluster.local/ns/shop/sa/order"

// clientCert is a self-signed certificate carrying a SPIFFE ID (the
// test's server does not verify chains: identity parsing is what matters).
func clientCert(t testing.TB, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: []*url.URL{u}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshaking completes TLS handshakes before Accept returns, as the
// sidecar's inbound listener does, so ConnContext sees the peer.
type handshaking struct {
	net.Listener
	cfg *tls.Config
}

func (l handshaking) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := tls.Server(c, l.cfg)
		if err := tc.Handshake(); err != nil {
			_ = c.Close()
			continue
		}
		return tc, nil
	}
}

type env struct {
	gw       string // gateway address
	upstream string // the external site's address
	log      *syncWriter
	metrics  *metrics.Registry
}

// start runs an external HTTP site and a gateway whose table registers
// api.example.test:<site port> for order only.
func start(t testing.TB, extra ...egress.Destination) *env {
	t.Helper()
	site, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	siteSrv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "site "+r.Host)
	})}
	go func() { _ = siteSrv.Serve(site) }()
	t.Cleanup(func() { _ = siteSrv.Close() })
	_, portStr, _ := net.SplitHostPort(site.Addr().String())
	var port uint32
	if _, err := fmt.Sscan(portStr, &port); err != nil {
		t.Fatal(err)
	}

	tbl := egress.Table{Destinations: []egress.Destination{
		{
			Name: "shop/api", Hosts: []string{"api.example.test"}, Port: port, Protocol: egress.ProtocolHTTP, Resolution: egress.ResolutionDNS,
			Rules: []egress.Rule{{Principals: []string{order}}},
		},
		{
			Name: "shop/limited", Hosts: []string{"limited.example.test"}, Port: port, Protocol: egress.ProtocolHTTP, Resolution: egress.ResolutionStatic,
			Endpoints: []string{"127.0.0.1"}, MaxConnections: 1, Rules: []egress.Rule{{Principals: []string{"*"}}},
		},
		{
			// A Service of type ExternalName: called by its mesh names,
			// dialled by its external name (which only the resolver knows).
			Name: "service/shop/legacy", Hosts: []string{"legacy.shop", "legacy.shop.svc.cluster.local"}, ExternalName: "ext.example.test",
			Port: port, Protocol: egress.ProtocolHTTP, Resolution: egress.ResolutionDNS,
			Rules: []egress.Rule{{Principals: []string{"spiffe://cluster.local/ns/shop/sa/*"}}},
		},
	}}
	tbl.Destinations = append(tbl.Destinations, extra...)
	data, _ := json.Marshal(tbl)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	st, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	l := xdstest.InboundListener("127.0.0.1", mesh.PortEgressGateway)
	l.FilterChains[0].Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		mesh.MetadataNamespace: {Fields: map[string]*structpb.Value{mesh.MetadataEgress: structpb.NewStructValue(st)}},
	}}
	snap, err := xdsclient.NewSnapshot([]*listener.Listener{l}, nil,
		[]*cluster.Cluster{xdstest.InboundCluster("127.0.0.1", mesh.PortEgressGateway)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gateway.Validate(snap); err != nil {
		t.Fatal(err)
	}
	rt, err := router.Compile(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tables atomic.Pointer[router.Table]
	tables.Store(rt)
	metricsReg := rt.Metrics

	logBuf := &syncWriter{written: make(chan struct{}, 64)}
	res := &gateway.Static{Hosts: map[string][]netip.Addr{
		"api.example.test": {netip.MustParseAddr("127.0.0.1")},
		"ext.example.test": {netip.MustParseAddr("127.0.0.1")},
	}}
	h := gateway.NewHandler(&tables, slog.New(slog.DiscardHandler), gateway.WithResolver(res), gateway.WithAccessLog(logBuf))
	t.Cleanup(h.CloseIdleConnections)
	serverCert := clientCert(t, "spiffe://cluster.local/ns/weft-system/sa/weft-egress-gateway")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := inbound.NewHTTPServer(h, slog.New(slog.DiscardHandler))
	cfg := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13}
	go func() { _ = srv.Serve(handshaking{ln, cfg}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &env{gw: ln.Addr().String(), upstream: site.Addr().String(), log: logBuf, metrics: metricsReg}
}

// syncWriter collects the access log written from request goroutines.
type syncWriter struct {
	mu      sync.Mutex
	b       strings.Builder
	written chan struct{} // a value per line, when there is room
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.written <- struct{}{}:
	default:
	}
	return w.b.Write(p)
}

// waitFor waits for a logged line containing s (a hang guard, not a
// timing assertion) and returns the log.
func (w *syncWriter) waitFor(t testing.TB, s string) string {
	t.Helper()
	for {
		if log := w.String(); strings.Contains(log, s) {
			return log
		}
		select {
		case <-w.written:
		case <-time.After(20 * time.Second):
			t.Fatalf("waited 20 s for an access-log line with %s:\n%s", s, w.String())
		}
	}
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// client speaks HTTP/2 over TLS to the gateway as identity id.
func client(t testing.TB, id string) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{clientCert(t, id)}, InsecureSkipVerify: true, NextProtos: []string{"h2"}}, //nolint:gosec // G402: the test checks the server's identity handling, not its chain.
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func (e *env) get(t testing.TB, c *http.Client, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+e.gw+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandler(t *testing.T) {
	e := start(t)
	_, port, _ := net.SplitHostPort(e.upstream)
	api := "api.example.test:" + port
	for _, tc := range []struct {
		name, id, host string
		want           int
		body           string
	}{
		{"allowed", order, api, http.StatusOK, "site " + api},
		{"other identity", "spiffe://cluster.local/ns/shop/sa/rogue", api, http.StatusForbidden, "may not reach"},
		{"not registered", order, "evil.example.test:" + port, http.StatusForbidden, "not a registered external destination"},
		{"address as host", order, e.upstream, http.StatusForbidden, "not a registered external destination"},
		{"registered host, other port", order, "api.example.test:1", http.StatusForbidden, "not a registered"},
		{"ExternalName by mesh name", order, "legacy.shop:" + port, http.StatusOK, "site ext.example.test:" + port},
		{"ExternalName by FQDN", order, "legacy.shop.svc.cluster.local:" + port, http.StatusOK, "site ext.example.test:" + port},
		{"ExternalName, other namespace", "spiffe://cluster.local/ns/billing/sa/x", "legacy.shop:" + port, http.StatusForbidden, "may not reach"},
		{"ExternalName, external name not a host of it", order, "ext.example.test:" + port, http.StatusForbidden, "not a registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.get(t, client(t, tc.id), tc.host)
			if code != tc.want || !strings.Contains(body, tc.body) {
				t.Errorf("GET Host %s as %s: %d %q, want %d containing %q", tc.host, tc.id, code, body, tc.want, tc.body)
			}
		})
	}
	if !strings.Contains(e.log.String(), `"result":"denied","reason":"denied"`) || !strings.Contains(e.log.String(), `"result":"allowed"`) {
		t.Errorf("access log:\n%s", e.log.String())
	}
}

// BenchmarkGateway: an HTTP GET through the gateway (TLS 1.3 + HTTP/2 from
// the client, HTTP/1.1 keep-alive to the site) against the same GET sent
// directly to the site: in parallel (throughput) and one at a time
// (latency; the difference is the latency the gateway adds).
func BenchmarkGateway(b *testing.B) {
	e := start(b)
	_, port, _ := net.SplitHostPort(e.upstream)
	serial := func(b *testing.B, c *http.Client, url, host string) {
		for b.Loop() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
			if host != "" {
				req.Host = host
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct-serial", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Cleanup(c.CloseIdleConnections)
		serial(b, c, "http://"+e.upstream+"/x", "")
	})
	b.Run("via-gateway-serial", func(b *testing.B) {
		serial(b, client(b, order), "https://"+e.gw+"/x", "api.example.test:"+port)
	})
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Cleanup(c.CloseIdleConnections)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+e.upstream+"/x", nil)
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	})
	b.Run("via-gateway", func(b *testing.B) {
		c := client(b, order)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+e.gw+"/x", nil)
				req.Host = "api.example.test:" + port
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	})
}
