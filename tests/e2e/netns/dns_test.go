package netns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/netnsharness"
)

// envResolver makes the test binary the upstream resolver of TestDNSProxy
// ("<ip:port>"): A records for names under testZone (testZoneAddr),
// NXDOMAIN for everything else; each query is logged as
// "query <udp|tcp> <name> <type> from <ip>".
const envResolver = "WEFT_NETNS_RESOLVER"

const (
	testZone     = "example.test."
	testZoneAddr = "192.0.2.55"
)

func resolverAnswer(q []byte, network, from string, log io.Writer, mu *sync.Mutex) []byte {
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
		return nil
	}
	qq := m.Questions[0]
	mu.Lock()
	fmt.Fprintf(log, "query %s %s %s from %s\n", network, qq.Name.String(), qq.Type, from)
	mu.Unlock()
	m.Header.Response, m.Header.RecursionAvailable = true, true
	m.Answers, m.Additionals, m.Authorities = nil, nil, nil
	switch {
	case strings.HasSuffix(strings.ToLower(qq.Name.String()), testZone) && qq.Type == dnsmessage.TypeA:
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 5},
			Body:   &dnsmessage.AResource{A: netip.MustParseAddr(testZoneAddr).As4()},
		}}
	case strings.HasSuffix(strings.ToLower(qq.Name.String()), testZone):
	default:
		m.Header.RCode = dnsmessage.RCodeNameError
	}
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}

// serveResolver answers on addr over UDP and TCP until the process is
// killed.
func serveResolver(addr string, log io.Writer) error {
	pc, err := net.ListenPacket("udp", addr) //nolint:noctx // a helper process that lives until killed.
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr) //nolint:noctx // same.
	if err != nil {
		return err
	}
	fmt.Fprintln(log, "resolver listening on", addr)
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var l [2]byte
				for {
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					from, _, _ := net.SplitHostPort(c.RemoteAddr().String())
					r := resolverAnswer(q, "tcp", from, log, &mu)
					if r == nil {
						return
					}
					out := binary.BigEndian.AppendUint16(nil, uint16(len(r))) //nolint:gosec // G115: a DNS message.
					if _, err := c.Write(append(out, r...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(from.String())
		if r := resolverAnswer(buf[:n], "udp", host, log, &mu); r != nil {
			if _, err := pc.WriteTo(r, from); err != nil {
				return err
			}
		}
	}
}

// TestDNSProxy: a pod with DNS capture (`weft-sidecar init
// --capture-dns=true`, real iptables) and its sidecar (--dns-proxy) fed
// by the real control plane; the pod's resolv.conf names an upstream
// resolver in the hub (this test binary). Through glibc's resolver
// (getent, the pod's search path and ndots:5), over UDP and TCP:
//   - the app resolves svc.ns, svc and the FQDN of mesh services to their
//     ClusterIPs, answered by the proxy (the upstream never sees them);
//   - a name outside the mesh is forwarded to the upstream and resolves;
//   - the proxy's own uid is not captured: the same lookups made as uid
//     1337 go straight to the upstream (which does not know mesh names),
//     and the proxy's forwarded queries do not loop back into it.
func TestDNSProxy(t *testing.T) {
	netnsharness.Require(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Fatal("getent not found (libc-bin)")
	}
	n := netnsharness.New(t, netnsharness.WithPrefix("wh"))
	dir, err := os.MkdirTemp("", "wh-dns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // G302: read by the proxy uid.
		t.Fatal(err)
	}
	app := n.AddPod("dns-app", map[string]netip.Addr{})
	// The pod's resolv.conf as the kubelet writes it (ip netns exec
	// bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf).
	upstream := netip.AddrPortFrom(n.Hub.IP, 53)
	resolvConf := fmt.Sprintf("nameserver %s\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 attempts:1 timeout:2\n", n.Hub.IP)
	if err := os.WriteFile(filepath.Join("/etc/netns", app.Name, "resolv.conf"), []byte(resolvConf), 0o644); err != nil { //nolint:gosec // G306: resolv.conf is world-readable.
		t.Fatal(err)
	}
	resolver := n.Hub.Start("resolver", dir, 0, "env", envResolver+"="+upstream.String(), os.Args[0])

	// The services' backends are EndpointSlice endpoints (no sidecar, so
	// no mTLS to set up for this plaintext proxy); only their names matter.
	meshYAML := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.7.7
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: cart-1, namespace: shop, labels: {kubernetes.io/service-name: cart}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["192.0.2.201"]}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: bank}
spec:
  clusterIP: 10.96.7.8
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ledger-1, namespace: bank, labels: {kubernetes.io/service-name: ledger}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["192.0.2.202"]}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: dns-app, namespace: shop, labels: {app: dns-app}}
spec: {address: %s, serviceAccount: default}
`, app.IP)
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(meshYAML), 0o644); err != nil { //nolint:gosec // G306: test file.
		t.Fatal(err)
	}
	xds := net.JoinHostPort(n.Hub.IP.String(), strconv.Itoa(mesh.PortXDS))
	cp := n.Hub.Start("control-plane", dir, 0, filepath.Join(binDir, mesh.BinaryControlPlane),
		"--registry=file", "--file="+meshFile, "--xds-address="+xds, "--insecure-xds",
		"--debug-address=127.0.0.1:"+strconv.Itoa(debugPort), "--debounce=50ms")

	// The init step as injected with DNS capture, twice (idempotent).
	var first string
	for i := range 2 {
		if out, err := app.Run(sidecarBin, mesh.SidecarInitCommand, mesh.InitFlagCaptureDNS+"=true"); err != nil {
			t.Fatalf("weft-sidecar init: %v\n%s", err, out)
		}
		saved, err := app.Run("iptables-save", "-t", "nat")
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, saved)
		}
		if rules := weftRules(string(saved)); i == 0 {
			first = rules
		} else if rules != first {
			t.Fatalf("init --capture-dns is not idempotent:\nfirst:\n%s\nsecond:\n%s", first, rules)
		}
	}
	if !strings.Contains(first, "-A WEFT_DNS -m owner --uid-owner 1337 -j RETURN") {
		t.Fatalf("no DNS rules:\n%s", first)
	}
	sidecar := app.Start("sidecar", dir, mesh.ProxyUID, sidecarBin,
		"--workload=dns-app", "--namespace=shop", "--ip="+app.IP.String(), "--xds-address="+xds,
		"--xds-plaintext", "--capture", mesh.SidecarFlagDNSProxy, "--log-level=debug")

	lookup := func(uid int, tcp bool, name string) (string, error) {
		argv := []string{"env"}
		if tcp {
			argv = append(argv, "RES_OPTIONS=use-vc")
		}
		argv = append(argv, "getent", "ahostsv4", name)
		if uid != 0 {
			u := strconv.Itoa(uid)
			argv = append([]string{"setpriv", "--reuid=" + u, "--regid=" + u, "--clear-groups"}, argv...)
		}
		out, err := app.Run(argv...)
		if err != nil {
			return "", fmt.Errorf("%w: %s", err, out)
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			return "", errors.New("no address")
		}
		return f[0], nil
	}
	// Ready: the proxy answers a mesh name (its table came over xDS).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if sidecar.Exited() {
			t.Fatalf("sidecar exited:\n%s", netnsharness.TailLog(sidecar.Log, 3000))
		}
		if resolver.Exited() {
			t.Fatalf("resolver exited:\n%s", netnsharness.TailLog(resolver.Log, 3000))
		}
		got, err := lookup(0, false, "cart.shop")
		if err == nil && got == "10.96.7.7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cart.shop never resolved to its ClusterIP through the proxy (last: %q %v)\nsidecar:\n%s\nresolver:\n%s\ncontrol plane:\n%s",
				got, err, netnsharness.TailLog(sidecar.Log, 8000), netnsharness.TailLog(resolver.Log, 1000), netnsharness.TailLog(cp.Log, 3000))
		}
		time.Sleep(100 * time.Millisecond) // poll interval within a deadline
	}

	for _, tc := range []struct {
		name string
		uid  int
		tcp  bool
		want string // "" = must not resolve
	}{
		{"cart.shop", 0, false, "10.96.7.7"},
		{"cart", 0, false, "10.96.7.7"},
		{"cart.shop.svc.cluster.local", 0, false, "10.96.7.7"},
		{"ledger.bank", 0, false, "10.96.7.8"},
		{"ledger.bank.svc", 0, true, "10.96.7.8"},
		{"cart.shop", 0, true, "10.96.7.7"},
		{"www." + strings.TrimSuffix(testZone, "."), 0, false, testZoneAddr},
		{"tcp." + strings.TrimSuffix(testZone, "."), 0, true, testZoneAddr},
		{"nowhere.invalid", 0, false, ""},
		// The proxy's uid: not captured, so the upstream answers alone.
		{"cart.shop", mesh.ProxyUID, false, ""},
		{"cart.shop", mesh.ProxyUID, true, ""},
		{"direct." + strings.TrimSuffix(testZone, "."), mesh.ProxyUID, false, testZoneAddr},
	} {
		proto := "udp"
		if tc.tcp {
			proto = "tcp"
		}
		t.Run(fmt.Sprintf("%s uid %d %s", tc.name, tc.uid, proto), func(t *testing.T) {
			got, err := lookup(tc.uid, tc.tcp, tc.name)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("%s resolved to %s, want no answer", tc.name, got)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("%s = %q (%v), want %s", tc.name, got, err, tc.want)
			}
		})
	}

	// What the upstream saw: forwarded names (from the pod), never the
	// mesh names the app asked (the proxy answered them), and uid 1337's
	// own lookups of mesh names (not captured).
	log, err := os.ReadFile(resolver.Log)
	if err != nil {
		t.Fatal(err)
	}
	seen := string(log)
	from := " from " + app.IP.String()
	for _, want := range []string{
		"query udp www.example.test. TypeA" + from,
		"query tcp tcp.example.test. TypeA" + from,
		"query udp direct.example.test. TypeA" + from,
		"query udp cart.shop.svc.cluster.local. TypeA" + from, // uid 1337's search path
		"query tcp cart.shop.svc.cluster.local. TypeA" + from,
	} {
		if !strings.Contains(seen, want) {
			t.Errorf("upstream log lacks %q", want)
		}
	}
	for _, never := range []string{"ledger.bank.svc.cluster.local."} {
		if strings.Contains(seen, "query udp "+never) || strings.Contains(seen, "query tcp "+never) {
			t.Errorf("the upstream was asked %s, which the proxy answers", never)
		}
	}

	// The proxy's own count, on its health port's /metrics.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return app.Dial(ctx, network, addr) },
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+net.JoinHostPort(app.IP.String(), strconv.Itoa(mesh.PortHealth))+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, result := range []string{"answered", "forwarded"} {
		re := regexp.MustCompile(mesh.MetricDNSQueries + `\{result="` + result + `"\} ([0-9]+)`)
		if m := re.FindSubmatch(body); m == nil || string(m[1]) == "0" {
			t.Errorf("%s{result=%q} missing or 0 in /metrics", mesh.MetricDNSQueries, result)
		} else {
			t.Logf("%s{result=%q} %s", mesh.MetricDNSQueries, result, m[1])
		}
	}
	if t.Failed() {
		t.Logf("upstream log:\n%s\nsidecar log:\n%s", seen, netnsharness.TailLog(sidecar.Log, 4000))
	}
}
