package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/xds"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--file=m.yaml", "--debounce=50ms", "--trust-domain=example.org", "--log-level=debug", "--ca-dir=ca", "--join-tokens=t.json", "--mtls-mode=permissive", "--max-connecting=8", "--max-subscriptions=500"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "m.yaml" || cfg.Debounce != 50*time.Millisecond || cfg.Mesh.TrustDomain != "example.org" ||
		cfg.Mesh.ClusterDomain != "cluster.local" || cfg.XDSAddress != "127.0.0.1:15012" ||
		cfg.DebugAddress != "127.0.0.1:15014" || cfg.LogLevel != slog.LevelDebug ||
		cfg.CA.Dir != "ca" || cfg.CA.JoinTokens != "t.json" || cfg.Mesh.MTLSMode != meshconfig.MTLSPermissive || cfg.InsecureXDS ||
		cfg.MaxConnecting != 8 || cfg.MaxSubscriptions != 500 {
		t.Fatalf("cfg = %+v", cfg)
	}
	for _, bad := range [][]string{
		{},                                // no --file
		{"--registry=consul", "--file=m"}, // unsupported registry
		{"--registry=kube", "--leader-lease-duration=1s"}, // lease shorter than the renew deadline
		{"--registry=kube", "--ca-dir=ca", "--ca-cert=c"}, // two CAs
		{"--file=m", "--trust-domain="},                   // invalid mesh config
		{"--file=m", "--log-level=chatty"},                // bad level
		{"--file=m", "--max-connecting=-1"},               // negative bound
		{"--file=m", "--max-subscriptions=-1"},            // negative bound
		{"--file=m", "extra"},
		{"--file=m", "--join-tokens=t"},                                     // no CA
		{"--file=m", "--ca-dir=ca"},                                         // no authenticator
		{"--file=m", "--ca-dir=ca", "--ca-cert=c", "--join-tokens=t"},       // two CAs
		{"--file=m", "--ca-cert=c", "--join-tokens=t"},                      // no key
		{"--file=m", "--ca-dir=ca", "--join-tokens=t", "--mtls-mode=off"},   // bad mode
		{"--file=m", "--ca-dir=ca", "--join-tokens=t", "--cert-lifetime=0"}, // bad lifetime
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

const mesh1 = `apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{port: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: payment-1, namespace: shop, labels: {app: payment}}
spec: {address: 127.0.0.2}
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: client, namespace: shop}
spec: {address: 127.0.0.3}
`

const payment2 = `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: {name: payment-2, namespace: shop, labels: {app: payment}}
spec: {address: 127.0.0.4}
`

// TestRun runs the daemon in-process on loopback ports chosen by the
// kernel: health, a sidecar's first config, an edit of the mesh file
// reaching the sidecar within 1 s, a bad edit rejected, graceful stop.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, []byte(mesh1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--file=" + path, "--xds-address=127.0.0.1:0", "--debug-address=127.0.0.1:0", "--insecure-xds"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.DiscardHandler), func(x, d net.Addr) { addrs <- [2]net.Addr{x, d} })
	}()
	var xdsAddr, debugAddr net.Addr
	select {
	case a := <-addrs:
		xdsAddr, debugAddr = a[0], a[1]
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("not listening within 5s")
	}
	base := "http://" + debugAddr.String()
	waitUntil(t, "healthz 200", func() bool { code, _ := get(t, base+"/healthz"); return code == http.StatusOK })

	cc, err := grpc.NewClient(xdsAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "outbound|8080||payment.shop.svc.cluster.local"
	req := &discovery.DiscoveryRequest{Node: &core.Node{Id: "client.shop"}, TypeUrl: resource.EndpointType, ResourceNames: []string{name}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	r := recvEDS(t, stream)
	if n := endpointsOf(t, r); n != 1 {
		t.Fatalf("first EDS: %d endpoints", n)
	}
	ack := func(r *discovery.DiscoveryResponse) {
		if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{name}, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	ack(r)
	waitUntil(t, "proxy listed with its ACK", func() bool {
		_, body := get(t, base+"/debug/proxies")
		var ps []xds.ProxyStatus
		return json.Unmarshal(body, &ps) == nil && len(ps) == 1 && ps[0].ID == "client.shop" &&
			ps[0].Versions[resource.EndpointType].Acked == r.GetVersionInfo()
	})
	code, body := get(t, base+"/debug/config_dump?proxy=client.shop")
	if code != http.StatusOK || !strings.Contains(string(body), name) {
		t.Fatalf("config_dump: %d %s", code, body)
	}

	// An endpoint added to the file reaches the sidecar within 1 s.
	start := time.Now()
	writeAtomic(t, path, mesh1+payment2)
	r2 := recvEDS(t, stream)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("edit reached the sidecar after %v, want < 1s", took)
	} else {
		t.Logf("edit reached the sidecar after %v", took)
	}
	if n := endpointsOf(t, r2); n != 2 || r2.GetVersionInfo() == r.GetVersionInfo() {
		t.Fatalf("after edit: %d endpoints, version %s (was %s)", n, r2.GetVersionInfo(), r.GetVersionInfo())
	}
	ack(r2)

	// A bad edit is counted and not pushed; health stays good.
	writeAtomic(t, path, mesh1+payment2+"---\napiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: shop}\nspec: {ports: [{port: 80}, {port: 80}]}\n")
	waitUntil(t, "registry error counted", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(string(body), "weft_registry_errors_total 1")
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz after a bad edit = %d", code)
	}

	// Removing an endpoint drains it from the sidecar within 1 s.
	start = time.Now()
	writeAtomic(t, path, mesh1)
	r3 := recvEDS(t, stream)
	if took := time.Since(start); took > time.Second || endpointsOf(t, r3) != 1 {
		t.Fatalf("removal: %d endpoints after %v", endpointsOf(t, r3), took)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s")
	}
}

func recvEDS(t *testing.T, s discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discovery.DiscoveryResponse {
	t.Helper()
	ch := make(chan *discovery.DiscoveryResponse, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := s.Recv()
		if err != nil {
			errc <- err
			return
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		if r.GetTypeUrl() != resource.EndpointType {
			t.Fatalf("got %s", r.GetTypeUrl())
		}
		return r
	case err := <-errc:
		t.Fatalf("recv: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no EDS response within 5s")
	}
	return nil
}

func endpointsOf(t *testing.T, r *discovery.DiscoveryResponse) int {
	t.Helper()
	n := 0
	for _, a := range r.GetResources() {
		cla := &endpoint.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(cla); err != nil {
			t.Fatal(err)
		}
		for _, l := range cla.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
	}
	return n
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
