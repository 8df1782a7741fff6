package local

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/launch"
)

// The egress gateway end-to-end test (issue 7): real binaries on a random
// 127.a.b.0/24; "external" sites are servers on other addresses of that
// range which only the gateway's --resolve names. Nothing leaves the
// machine.

const (
	hostAPI       = "api.example.test"
	hostForbidden = "forbidden.example.test"
	hostCDN       = "a.cdn.example.test"
	hostLegacyExt = "legacy.example.test" // spec.externalName of Service shop/legacy
	hostSecure    = "secure.example.test"
	hostUntrusted = "untrusted.example.test"
	hostFlaky     = "flaky.example.test"   // answers 503 to the first two requests of each path
	hostHanging   = "hanging.example.test" // never answers
	// hostTCP is a raw TCP destination (tcpEchoServer at .110), for the
	// TCP metrics test.
	hostTCP = "tcp.example.test"
	portTCP = 7000
)

// site is one external server; conns counts accepted connections, reqs
// the requests it answered.
type site struct {
	name  string
	conns atomic.Int64
	reqs  atomic.Int64
}

func (s *site) serve(t *testing.T, addr string, cert *tls.Certificate) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.reqs.Add(1)
			fmt.Fprintf(w, "%s host=%s", s.name, r.Host)
			if r.TLS != nil {
				fmt.Fprintf(w, " sni=%s", r.TLS.ServerName)
			}
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// selfSigned makes a certificate for the external TLS names.
func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// echo is an external plain-TCP server that echoes what it reads; conns
// counts accepted connections.
type echo struct{ conns atomic.Int64 }

func (s *echo) serve(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(c, c)
			})
		}
	})
}

// serveFlakyAndHanging runs the flaky site (503 to the first two requests
// of each path) and the hanging one (answers nothing until the caller
// gives up).
func (e *egressEnv) serveFlakyAndHanging(t *testing.T, flakyAddr, hangingAddr string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	flaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.flakyTries.Add(1)
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "flaky ok after %d", n-1)
	})
	hanging := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{flakyAddr, flaky}, {hangingAddr, hanging}} {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
}

// certPEM is a certificate in PEM, for caCertificates.
func certPEM(c tls.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
}

// egressMesh: two gateway replicas; order (allowed), rogue (same
// namespace, other account) and audit (other namespace) as clients;
// ExternalServices api (HTTP and TLS), forbidden, cdn (wildcard TLS),
// secure and untrusted (HTTP with TLS originated by the gateway, trusting
// caPEM and otherCAPEM), db (TCP by address); a Service of type
// ExternalName legacy.
func egressMesh(base, caPEM, otherCAPEM string) string {
	ip := func(n int) string { return fmt.Sprintf("%s.%d", base, n) }
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Service
metadata: {name: weft-egress-gateway, namespace: weft-system}
spec:
  selector: {app: weft-egress-gateway}
  ports: [{name: tunnel, port: 15443, targetPort: 15443}]
---
`)
	resolve := fmt.Sprintf("--mode=egress-gateway --resolve=%s=%s --resolve=%s=%s --resolve=%s=%s --resolve=cdn.example.test=%s --resolve=b.%s=%s"+
		" --resolve=%s=%s --resolve=%s=%s --resolve=%s=%s --resolve=%s=%s --resolve=%s=%s --resolve=%s=%s",
		hostAPI, ip(100), hostForbidden, ip(102), hostCDN, ip(101), ip(101), hostCDN, ip(101),
		hostLegacyExt, ip(104), hostSecure, ip(105), hostUntrusted, ip(105), hostTCP, ip(110), hostFlaky, ip(109), hostHanging, ip(111))
	for i, n := range []int{21, 22} {
		fmt.Fprintf(&b, `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: egress-%d
  namespace: weft-system
  labels: {app: weft-egress-gateway}
  annotations:
    local.weft.dev/sidecar-args: %q
spec: {address: %s, serviceAccount: weft-egress-gateway, ports: [{name: tunnel, port: 15443}]}
---
`, i+1, resolve, ip(n))
	}
	for _, w := range [][4]string{{"order-1", "shop", "order", ip(10)}, {"rogue-1", "shop", "rogue", ip(11)}, {"audit-1", "audit", "audit", ip(12)}} {
		fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\nspec: {address: %s, serviceAccount: %s}\n---\n", w[0], w[1], w[2], w[3], w[2])
	}
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: shop}
spec:
  type: ExternalName
  externalName: %s
  ports: [{name: http, port: 8080}, {name: https, port: 8443}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: secure, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8081, name: http, protocol: HTTP, originateTLS: true, targetPort: 9443}]
  caCertificates: %q
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: untrusted, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8081, name: http, protocol: HTTP, originateTLS: true, targetPort: 9443}]
  caCertificates: %q
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.test]
  addresses: [%s/31]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: flaky, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8082, name: http, protocol: HTTP}]
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky, namespace: shop}
spec:
  targetRef: {group: weft.dev, kind: ExternalService, name: flaky}
  retry: {attempts: 3, retryOn: [connect-failure, 5xx], backoffBase: 5ms}
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: hanging, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8083, name: http, protocol: HTTP}]
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: hanging, namespace: shop}
spec:
  targetRef: {group: weft.dev, kind: ExternalService, name: hanging}
  timeout: 500ms
---
`, hostLegacyExt, hostSecure, caPEM, hostUntrusted, otherCAPEM, ip(106), hostFlaky, hostHanging)
	fmt.Fprintf(&b, `apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: api, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 8443, name: tls, protocol: TLS}]
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: forbidden, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: 8080, protocol: HTTP}]
  allow: [{from: [{serviceAccounts: [shop/rogue]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: cdn, namespace: shop}
spec:
  hosts: ["*.cdn.example.test"]
  ports: [{number: 8443, protocol: TLS}]
  allow: [{from: [{principals: ["spiffe://cluster.local/ns/shop/sa/order"]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: ExternalService
metadata: {name: tcpecho, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: %d, name: tcp, protocol: TCP}]
  allow: [{from: [{serviceAccounts: [shop/order]}]}]
`, hostAPI, hostForbidden, hostTCP, portTCP)
	return b.String()
}

type egressEnv struct {
	*env
	base    string
	roots   *x509.CertPool
	sites   map[string]*site
	echoes  map[string]*echo
	proxies map[string]*url.URL
	// flakyTries counts the requests the flaky site received.
	flakyTries atomic.Int64
}

func startEgressMesh(t *testing.T, opts ...launch.Option) *egressEnv {
	t.Helper()
	base := randomBase()
	ip := func(n int) string { return fmt.Sprintf("%s.%d", base, n) }
	cert, roots := selfSigned(t, hostAPI, "*.cdn.example.test", "cdn.example.test", hostLegacyExt)
	// The site behind originated TLS has its own CA (the certificate is
	// its own root); otherCA signed nothing the site presents.
	secureCert, _ := selfSigned(t, hostSecure, hostUntrusted)
	otherCA, _ := selfSigned(t, hostSecure, hostUntrusted)
	ee := &egressEnv{base: base, roots: roots, sites: map[string]*site{}, echoes: map[string]*echo{}, proxies: map[string]*url.URL{}}
	for _, s := range []struct {
		name, addr string
		cert       *tls.Certificate
	}{
		{"api", ip(100) + ":8080", nil},
		{"api-tls", ip(100) + ":8443", &cert},
		{"cdn", ip(101) + ":8443", &cert},
		{"forbidden", ip(102) + ":8080", nil},
		{"direct", ip(103) + ":8080", nil},
		{"legacy", ip(104) + ":8080", nil},
		{"legacy-tls", ip(104) + ":8443", &cert},
		{"secure", ip(105) + ":9443", &secureCert},
	} {
		st := &site{name: s.name}
		st.serve(t, s.addr, s.cert)
		ee.sites[s.name] = st
	}
	ee.serveFlakyAndHanging(t, ip(109)+":8082", ip(111)+":8083")
	for _, n := range []int{106, 108} {
		ec := &echo{}
		ec.serve(t, fmt.Sprintf("%s:5432", ip(n)))
		ee.echoes[ip(n)] = ec
	}
	tcpEchoServer(t, fmt.Sprintf("%s:%d", ip(110), portTCP), "tcp")
	dir := t.TempDir()
	e := &env{dir: dir, meshFile: filepath.Join(dir, "mesh.yaml")}
	e.writeFile(t, []byte(egressMesh(base, certPEM(secureCert), certPEM(otherCA))))
	all := append([]launch.Option{
		launch.WithControlPlaneIP(ip(1)),
		launch.WithRunDir(filepath.Join(dir, "logs")),
		launch.WithLogLevel("info"),
		launch.WithStopTimeout(3 * time.Second),
		launch.WithReadyTimeout(30 * time.Second),
		launch.WithSecureXDS(),
	}, opts...)
	m, err := launch.Start(t.Context(), e.meshFile, binDir, all...)
	if err != nil {
		t.Fatalf("start mesh on %s.0/24: %v", base, err)
	}
	e.m = m
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs(t)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop mesh: %v", err)
		}
	})
	ee.env = e
	for _, w := range m.Workloads() {
		u, err := url.Parse(w.ProxyURL())
		if err != nil {
			t.Fatal(err)
		}
		ee.proxies[w.Name] = u
	}
	return ee
}

// client sends as workload from through its sidecar; serverName overrides
// the TLS SNI (spoofing).
func (e *egressEnv) client(t *testing.T, from, serverName string) *http.Client {
	t.Helper()
	tr := &http.Transport{
		Proxy:             http.ProxyURL(e.proxies[from]),
		TLSClientConfig:   &tls.Config{RootCAs: e.roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func get(ctx context.Context, c *http.Client, rawURL string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), err
}

// waitGet retries until rawURL answers want (the configuration arrives
// after readiness: egress tables and routes come with the first push).
func waitGet(t *testing.T, c *http.Client, rawURL string, want int, deadline time.Duration) (int, string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		code, body, err := get(t.Context(), c, rawURL)
		if (err == nil && code == want) || time.Now().After(end) {
			if err != nil {
				body = err.Error()
			}
			return code, body
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric sums the samples of name whose labels contain every want.
func metric(ctx context.Context, healthAddr, name string, want ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+healthAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum, nil
}

// gatewayMetric sums weft_egress_requests_total (or the metric named by a
// first argument starting with "weft_") over both gateway replicas.
func (e *egressEnv) gatewayMetric(t *testing.T, want ...string) float64 {
	t.Helper()
	name := mesh.MetricEgressRequests
	if len(want) > 0 && strings.HasPrefix(want[0], "weft_") {
		name, want = want[0], want[1:]
	}
	var sum float64
	for _, replica := range []string{"egress-1", "egress-2"} {
		w, _ := e.m.Workload(replica)
		v, err := metric(t.Context(), w.HealthAddress(), name, want...)
		if err != nil {
			continue // a killed replica
		}
		sum += v
	}
	return sum
}

// gatewayLogged reports whether a gateway access-log line has every part.
func (e *egressEnv) gatewayLogged(parts ...string) bool {
	for _, name := range []string{"egress-1", "egress-2"} {
		w, _ := e.m.Workload(name)
		data, err := os.ReadFile(e.m.SidecarLogFile(w))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			ok := strings.Contains(line, `"msg":"egress"`)
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// waitLogged is gatewayLogged, polled until the deadline.
func (e *egressEnv) waitLogged(deadline time.Duration, parts ...string) bool {
	end := time.Now().Add(deadline)
	for !e.gatewayLogged(parts...) {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func TestEgressGateway(t *testing.T) {
	e := startEgressMesh(t)
	order := e.client(t, "order-1", "")
	rogue := e.client(t, "rogue-1", "")

	t.Run("allowed HTTP", func(t *testing.T) {
		code, body := waitGet(t, order, "http://"+hostAPI+":8080/x", http.StatusOK, 10*time.Second)
		if code != http.StatusOK || !strings.HasPrefix(body, "api host="+hostAPI+":8080") {
			t.Fatalf("GET api over HTTP: %d %q", code, body)
		}
		if !e.gatewayLogged(`"result":"allowed"`, `"source":"spiffe://cluster.local/ns/shop/sa/order"`, `"destination":"`+hostAPI+`:8080"`) {
			t.Error("no allowed access-log line")
		}
	})
	t.Run("allowed TLS passthrough", func(t *testing.T) {
		code, body := waitGet(t, order, "https://"+hostAPI+":8443/y", http.StatusOK, 5*time.Second)
		if code != http.StatusOK || !strings.HasPrefix(body, "api-tls host=") {
			t.Fatalf("GET api over TLS (CONNECT): %d %q", code, body)
		}
		code, body = waitGet(t, order, "https://"+hostCDN+":8443/", http.StatusOK, 5*time.Second)
		if code != http.StatusOK || !strings.HasPrefix(body, "cdn host=") {
			t.Fatalf("GET wildcard host over TLS: %d %q", code, body)
		}
	})
	t.Run("refusals logged and counted", func(t *testing.T) {
		before := e.gatewayMetric(t, `reason="denied"`)
		code, body, err := get(t.Context(), order, "http://"+hostForbidden+":8080/")
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "may not reach") {
			t.Errorf("order -> forbidden host: %d %q %v", code, body, err)
		}
		code, body, err = get(t.Context(), rogue, "http://"+hostAPI+":8080/")
		if err != nil || code != http.StatusForbidden {
			t.Errorf("rogue -> api: %d %q %v", code, body, err)
		}
		if _, _, err := get(t.Context(), rogue, "https://"+hostAPI+":8443/"); err == nil {
			t.Error("rogue -> api over TLS: not refused")
		}
		if got := e.gatewayMetric(t, `reason="denied"`) - before; got < 3 {
			t.Errorf("weft_egress_requests_total{reason=denied} grew by %v, want 3", got)
		}
		if !e.gatewayLogged(`"result":"denied"`, `"source":"spiffe://cluster.local/ns/shop/sa/order"`, `"destination":"`+hostForbidden+`:8080"`) {
			t.Error("no denied access-log line for order -> forbidden")
		}
		if !e.gatewayLogged(`"result":"denied"`, `"source":"spiffe://cluster.local/ns/shop/sa/rogue"`, `"destination":"`+hostAPI+`:8080"`) {
			t.Error("no denied access-log line for rogue -> api")
		}
		if !e.waitLogged(3*time.Second, `"result":"denied"`, `"source":"spiffe://cluster.local/ns/shop/sa/rogue"`, `"destination":"`+hostAPI+`:8443"`, `"protocol":"TLS"`) {
			t.Error("no denied access-log line for rogue -> api over TLS (CONNECT)")
		}
		if n := e.sites["forbidden"].conns.Load(); n != 0 {
			t.Errorf("the forbidden site got %d connections", n)
		}
	})
	t.Run("REGISTRY_ONLY", func(t *testing.T) {
		code, body, err := get(t.Context(), order, "http://unregistered.example.test:8080/")
		want := `weft: host "unregistered.example.test:8080" is not in the mesh registry (outbound policy REGISTRY_ONLY)`
		if err != nil || code != http.StatusBadGateway || !strings.Contains(body, want) {
			t.Errorf("unregistered host: %d %q %v", code, body, err)
		}
		w, _ := e.m.Workload("order-1")
		if v, err := metric(t.Context(), w.HealthAddress(), mesh.MetricRegistryOnlyRefused); err != nil || v < 1 {
			t.Errorf("%s = %v (%v)", mesh.MetricRegistryOnlyRefused, v, err)
		}
	})
	t.Run("spoofing and wildcards", func(t *testing.T) {
		cdnBefore := e.sites["cdn"].conns.Load()
		// An allowed CONNECT target with the SNI of another allowed name.
		spoof := e.client(t, "order-1", hostAPI)
		if code, body, err := get(t.Context(), spoof, "https://"+hostCDN+":8443/"); err == nil {
			t.Errorf("SNI %s through CONNECT %s: %d %q, want refused", hostAPI, hostCDN, code, body)
		}
		// The allowed name's SNI, but the CONNECT target is an address.
		if code, body, err := get(t.Context(), spoof, "https://"+e.base+".100:8443/"); err == nil {
			t.Errorf("SNI %s through CONNECT to an address: %d %q, want refused", hostAPI, code, body)
		}
		if n := e.sites["cdn"].conns.Load() - cdnBefore; n != 0 {
			t.Errorf("the cdn site got %d connections from spoofed CONNECTs", n)
		}
		deadline := time.Now().Add(2 * time.Second)
		for !e.gatewayLogged(`"reason":"sni_mismatch"`) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !e.gatewayLogged(`"reason":"sni_mismatch"`, `"destination":"`+hostCDN+`:8443"`) {
			t.Error("no sni_mismatch access-log line")
		}
		for _, h := range []string{"cdn.example.test", "b." + hostCDN} {
			if code, _, err := get(t.Context(), order, "https://"+h+":8443/"); err == nil {
				t.Errorf("wildcard *.cdn.example.test matched %s: %d", h, code)
			}
		}
	})
	t.Run("ExternalName Service", func(t *testing.T) {
		// Reached by its mesh names; the gateway resolves and dials its
		// external name and addresses the site by it.
		want := "legacy host=" + hostLegacyExt + ":8080"
		for _, u := range []string{"http://legacy.shop:8080/a", "http://legacy.shop.svc.cluster.local:8080/b", "http://" + hostLegacyExt + ":8080/c"} {
			code, body := waitGet(t, order, u, http.StatusOK, 5*time.Second)
			if code != http.StatusOK || body != want {
				t.Errorf("order -> %s: %d %q, want 200 %q", u, code, body, want)
			}
		}
		if !e.gatewayLogged(`"result":"allowed"`, `"service":"service/shop/legacy"`, `"destination":"legacy.shop:8080"`) {
			t.Error("no allowed access-log line for service/shop/legacy")
		}
		// Its own namespace only: rogue (shop) may, audit (namespace
		// audit) may not.
		if code, body := waitGet(t, rogue, "http://legacy.shop:8080/", http.StatusOK, 5*time.Second); code != http.StatusOK {
			t.Errorf("rogue (namespace shop) -> legacy.shop: %d %q, want 200", code, body)
		}
		before := e.gatewayMetric(t, `reason="denied"`, `service="service/shop/legacy"`)
		reqs := e.sites["legacy"].reqs.Load()
		audit := e.client(t, "audit-1", "")
		code, body := waitGet(t, audit, "http://legacy.shop:8080/", http.StatusForbidden, 5*time.Second)
		if code != http.StatusForbidden || !strings.Contains(body, "may not reach") {
			t.Errorf("audit (other namespace) -> legacy.shop: %d %q, want 403", code, body)
		}
		if got := e.gatewayMetric(t, `reason="denied"`, `service="service/shop/legacy"`) - before; got < 1 {
			t.Errorf(`weft_egress_requests_total{reason="denied",service="service/shop/legacy"} grew by %v, want >= 1`, got)
		}
		if !e.gatewayLogged(`"result":"denied"`, `"source":"spiffe://cluster.local/ns/audit/sa/audit"`, `"service":"service/shop/legacy"`) {
			t.Error("no denied access-log line for audit -> legacy")
		}
		if n := e.sites["legacy"].reqs.Load() - reqs; n != 0 {
			t.Errorf("the legacy site answered %d requests from audit", n)
		}
		// Its TLS port (named https): a CONNECT to the mesh name whose
		// ClientHello names the external name passes; one naming another
		// registered host is refused before anything is dialled.
		code, body = waitGet(t, e.client(t, "order-1", hostLegacyExt), "https://legacy.shop:8443/t", http.StatusOK, 5*time.Second)
		if want := "legacy-tls host=legacy.shop:8443 sni=" + hostLegacyExt; code != http.StatusOK || body != want {
			t.Errorf("order -> legacy.shop:8443 (SNI %s): %d %q, want 200 %q", hostLegacyExt, code, body, want)
		}
		conns := e.sites["legacy-tls"].conns.Load()
		if code, body, err := get(t.Context(), e.client(t, "order-1", hostAPI), "https://legacy.shop:8443/"); err == nil {
			t.Errorf("SNI %s through CONNECT legacy.shop:8443: %d %q, want refused", hostAPI, code, body)
		}
		if n := e.sites["legacy-tls"].conns.Load() - conns; n != 0 {
			t.Errorf("a spoofed SNI reached the legacy TLS site (%d connections)", n)
		}
		if !e.waitLogged(3*time.Second, `"reason":"sni_mismatch"`, `"destination":"legacy.shop:8443"`) {
			t.Error("no sni_mismatch access-log line for legacy.shop:8443")
		}
	})
	t.Run("TLS origination", func(t *testing.T) {
		// The app sends plain HTTP through its sidecar; the gateway speaks
		// TLS to the site (SNI = the host), trusting the site's own CA.
		code, body := waitGet(t, order, "http://"+hostSecure+":8081/s", http.StatusOK, 5*time.Second)
		if want := "secure host=" + hostSecure + ":8081 sni=" + hostSecure; code != http.StatusOK || body != want {
			t.Errorf("order -> %s:8081: %d %q, want 200 %q", hostSecure, code, body, want)
		}
		// Same site, but the destination trusts another CA: the gateway
		// refuses the site's certificate and nothing reaches its handler.
		reqs := e.sites["secure"].reqs.Load()
		code, body, err := get(t.Context(), order, "http://"+hostUntrusted+":8081/")
		if err != nil || code != http.StatusBadGateway || !strings.Contains(body, "certificate") {
			t.Errorf("order -> %s:8081 (untrusted CA): %d %q %v, want 502 about the certificate", hostUntrusted, code, body, err)
		}
		if n := e.sites["secure"].reqs.Load() - reqs; n != 0 {
			t.Errorf("the site answered %d requests over an unverified TLS connection", n)
		}
		if !e.gatewayLogged(`"result":"error"`, `"reason":"upstream_failed"`, `"destination":"`+hostUntrusted+`:8081"`) {
			t.Error("no upstream_failed access-log line for the untrusted CA")
		}
	})
	t.Run("TCP to an address", func(t *testing.T) {
		inside, outside := e.base+".106:5432", e.base+".108:5432"
		var conn net.Conn
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, code, err := connectTCP(t.Context(), e.proxies["order-1"], inside)
			if err == nil && code == http.StatusOK {
				conn = c
				break
			}
			if c != nil {
				_ = c.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("order: CONNECT %s: %d %v", inside, code, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		_ = conn.Close()
		if err != nil || line != "ping\n" {
			t.Fatalf("echo through CONNECT %s: %q %v", inside, line, err)
		}
		// A tunnel's line is written when it ends, after the close above.
		if !e.waitLogged(3*time.Second, `"result":"allowed"`, `"service":"shop/db"`, `"destination":"`+inside+`"`, `"protocol":"TCP"`) {
			t.Error("no allowed access-log line for the TCP destination")
		}
		// Outside the CIDR: refused by the sidecar (no destination), the
		// address never dialled.
		c, code, err := connectTCP(t.Context(), e.proxies["order-1"], outside)
		if c != nil {
			_ = c.Close()
		}
		if err != nil || code != http.StatusBadGateway {
			t.Errorf("order: CONNECT %s (outside the CIDR): %d %v, want 502", outside, code, err)
		}
		if n := e.echoes[e.base+".108"].conns.Load(); n != 0 {
			t.Errorf("the address outside the CIDR got %d connections", n)
		}
		// Inside the CIDR, another identity: refused by the gateway.
		before := e.echoes[e.base+".106"].conns.Load()
		c, code, err = connectTCP(t.Context(), e.proxies["rogue-1"], inside)
		if c != nil {
			_ = c.Close()
		}
		if err != nil || code != http.StatusForbidden {
			t.Errorf("rogue: CONNECT %s: %d %v, want 403", inside, code, err)
		}
		if n := e.echoes[e.base+".106"].conns.Load() - before; n != 0 {
			t.Errorf("a refused CONNECT reached the address (%d connections)", n)
		}
		if !e.waitLogged(3*time.Second, `"result":"denied"`, `"source":"spiffe://cluster.local/ns/shop/sa/rogue"`, `"destination":"`+inside+`"`) {
			t.Error("no denied access-log line for rogue -> the TCP address")
		}
	})
	t.Run("resilience at the gateway", func(t *testing.T) {
		// The ExternalService's TrafficPolicy (3 attempts on 5xx) at the
		// gateway: two 503s, then the answer; the retry budget (default
		// 20%, floor 3) lets them through.
		before := e.flakyTries.Load()
		retries := e.gatewayMetric(t, "weft_cluster_retries_total", `cluster="egress|shop/flaky:8082"`)
		code, body := waitGet(t, order, "http://"+hostFlaky+":8082/once", http.StatusOK, 5*time.Second)
		if code != http.StatusOK || body != "flaky ok after 2" {
			t.Fatalf("flaky host: %d %q, want 200 after two retried 503s", code, body)
		}
		if n := e.flakyTries.Load() - before; n != 3 {
			t.Errorf("the flaky site got %d tries, want 3", n)
		}
		if got := e.gatewayMetric(t, "weft_cluster_retries_total", `cluster="egress|shop/flaky:8082"`) - retries; got != 2 {
			t.Errorf("gateway retries for egress|shop/flaky:8082 grew by %v, want 2", got)
		}
		if !e.waitLogged(3*time.Second, `"destination":"`+hostFlaky+`:8082"`, `"status":200`, `"attempts":3`) {
			t.Error("no access-log line with 3 attempts for the flaky host")
		}
		// Its TrafficPolicy's 500ms timeout: 504 from the gateway.
		start := time.Now()
		code, body, err := get(t.Context(), order, "http://"+hostHanging+":8083/")
		if took := time.Since(start); err != nil || code != http.StatusGatewayTimeout || took > 4*time.Second {
			t.Errorf("hanging host: %d %q %v after %v, want 504 after about 500ms", code, body, err, took)
		}
		if !e.waitLogged(3*time.Second, `"destination":"`+hostHanging+`:8083"`, `"reason":"timeout"`, `"status":504`) {
			t.Error("no timeout access-log line for the hanging host")
		}
	})
	t.Run("replica killed under load", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		c := e.client(t, "order-1", "")
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					code, body, err := getDebug(ctx, c, "http://"+hostAPI+":8080/load")
					switch {
					case ctx.Err() != nil:
					case err == nil && code == http.StatusOK:
						ok.Add(1)
					default:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, body, err))
					}
				}
			})
		}
		time.Sleep(time.Second)
		w, _ := e.m.Workload("egress-1")
		pid := e.m.SidecarPID(w.NodeID())
		if pid <= 0 {
			t.Fatal("no pid for egress-1")
		}
		killedAt := ok.Load() + failed.Load()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		cancel()
		wg.Wait()
		total := ok.Load() + failed.Load()
		t.Logf("failover: %d requests (%d before the kill), %d failed (%.3f%%); first failure: %v",
			total, killedAt, failed.Load(), 100*float64(failed.Load())/float64(max(total, 1)), firstErr.Load())
		ow, _ := e.m.Workload("order-1")
		exhausted, _ := metric(t.Context(), ow.HealthAddress(), "weft_cluster_retry_budget_exhausted_total", "weft-egress-gateway")
		retries, _ := metric(t.Context(), ow.HealthAddress(), "weft_cluster_retries_total", "weft-egress-gateway")
		t.Logf("order-1 -> gateway cluster: %v retries, %v refused by the retry budget", retries, exhausted)
		// Requests in flight on the killed replica fail with a reset; the
		// route's retry policy (reset, 2 retries, previous hosts avoided)
		// sends them to the other replica. Allow a handful (0.5%) for
		// requests caught between the retries and the EDS update.
		if ok.Load() == 0 || float64(failed.Load()) > 0.005*float64(total) {
			t.Errorf("%d ok, %d failed after killing one of two replicas; want at most 0.5%% failures", ok.Load(), failed.Load())
		}
	})
}

func TestEgressAllowAny(t *testing.T) {
	e := startEgressMesh(t, launch.WithControlPlaneArgs("--outbound-policy=ALLOW_ANY"))
	order := e.client(t, "order-1", "")
	direct := "http://" + e.base + ".103:8080/"
	code, body := waitGet(t, order, direct, http.StatusOK, 10*time.Second)
	if code != http.StatusOK || !strings.HasPrefix(body, "direct") {
		t.Fatalf("ALLOW_ANY: %s: %d %q", direct, code, body)
	}
	// Registered hosts still go through the gateway and its rules.
	if code, body := waitGet(t, order, "http://"+hostAPI+":8080/", http.StatusOK, 5*time.Second); code != http.StatusOK {
		t.Errorf("ALLOW_ANY, registered host: %d %q", code, body)
	}
	rogue := e.client(t, "rogue-1", "")
	if code, _, err := get(t.Context(), rogue, "http://"+hostAPI+":8080/"); err != nil || code != http.StatusForbidden {
		t.Errorf("ALLOW_ANY, rogue -> registered api: %d %v, want 403", code, err)
	}
}

// connectTCP sends CONNECT target to an HTTP proxy (a sidecar) and
// returns the connection (bytes after a 200 are the tunnel's) and the
// status.
func connectTCP(ctx context.Context, proxy *url.URL, target string) (net.Conn, int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy.Host)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		_ = c.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		_ = c.Close()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		_ = c.Close()
		return nil, resp.StatusCode, nil
	}
	_ = c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, resp.StatusCode, nil
}

// bufferedConn reads through the reader that parsed the CONNECT answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// getDebug is get with x-weft-debug, whose attempts header it appends to
// a failure's body.
func getDebug(ctx context.Context, c *http.Client, rawURL string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set(mesh.HeaderDebug, "1")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body) + " attempts=" + resp.Header.Get(mesh.HeaderAttempts) + " upstream=" + resp.Header.Get(mesh.HeaderUpstream), err
}
