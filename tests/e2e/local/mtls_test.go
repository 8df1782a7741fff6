package local

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cav1 "github.com/weftmesh/weft/api/ca/v1"
	"github.com/weftmesh/weft/api/ca/v1/cav1grpc"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/launch"
)

// serialWatch records the distinct serials each sidecar presents.
type serialWatch map[string]map[string]bool

func (s serialWatch) poll(ctx context.Context, e *env) {
	for _, w := range e.m.Workloads() {
		if c, err := e.sidecarCert(ctx, w.NodeID()); err == nil && c.Serial != "" {
			if s[w.NodeID()] == nil {
				s[w.NodeID()] = map[string]bool{}
			}
			s[w.NodeID()][c.Serial] = true
		}
	}
}

// min is the fewest distinct serials any sidecar showed.
func (s serialWatch) min(e *env) int {
	n := -1
	for _, w := range e.m.Workloads() {
		if k := len(s[w.NodeID()]); n < 0 || k < n {
			n = k
		}
	}
	return n
}

// watchFor polls serials every 100 ms for d.
func (s serialWatch) watchFor(t *testing.T, e *env, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) && t.Context().Err() == nil {
		s.poll(t.Context(), e)
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMTLSRotationUnderLoad: certificates live 4 s, so every sidecar renews
// about every 2 s; traffic through the client -> order -> payment and
// inventory chain (three mTLS hops per request) must not fail across
// several renewals, and then across a whole root rotation (add ->
// activate -> remove).
func TestMTLSRotationUnderLoad(t *testing.T) {
	const lifetime = 4 * time.Second
	e := startSecureMesh(t, meshParams{Base: randomBase(), Payment2: "no"}, launch.WithCertLifetime(lifetime))
	bg := e.startLoad(t, orderURL, 2)
	bg.waitOK(t, 20, 10*time.Second)

	t.Run("leaf rotation", func(t *testing.T) {
		seen := serialWatch{}
		seen.watchFor(t, e, 3*lifetime)
		if n := seen.min(e); n < 4 {
			t.Fatalf("some sidecar showed only %d serials in %s: %v", n, 3*lifetime, seen)
		}
		t.Logf("in %s every sidecar presented at least %d certificates; load so far: %d ok, %d failed",
			3*lifetime, seen.min(e), bg.ok.Load(), bg.failed.Load())
	})

	t.Run("root rotation", func(t *testing.T) {
		ctx := t.Context()
		step := func(s string) {
			t.Helper()
			code, body, err := e.post(ctx, "/debug/ca/rotate-root?step="+s)
			if err != nil || code != http.StatusOK {
				t.Fatalf("step %s: %d %s %v", s, code, body, err)
			}
			t.Logf("step %s: %s", s, strings.TrimSpace(body))
		}
		step("add")
		e.waitAllSidecars(t, "two roots in every bundle", 2*lifetime, func(c sidecarCert) bool { return c.Roots == 2 })
		before := serialWatch{}
		before.poll(ctx, e)
		step("activate")
		// remove is refused while any proxy holds a certificate from the old
		// root; it succeeds once every one has renewed from the new one.
		deadline := time.Now().Add(3 * lifetime)
		refused := 0
		for {
			code, body, err := e.post(ctx, "/debug/ca/rotate-root?step=remove")
			if err != nil {
				t.Fatal(err)
			}
			if code == http.StatusOK {
				t.Logf("step remove (after %d refusals while old certificates were in use): %s", refused, strings.TrimSpace(body))
				break
			}
			if code != http.StatusConflict || time.Now().After(deadline) {
				t.Fatalf("step remove: %d %s", code, body)
			}
			refused++
			time.Sleep(100 * time.Millisecond)
		}
		e.waitAllSidecars(t, "one root in every bundle", 2*lifetime, func(c sidecarCert) bool { return c.Roots == 1 })
		// Keep going for a few more renewals on the new root alone.
		after := serialWatch{}
		after.watchFor(t, e, 2*lifetime)
		for id, s := range after {
			for serial := range s {
				if before[id][serial] {
					t.Errorf("%s still presents %s from before the rotation", id, serial)
				}
			}
		}
	})
	bg.report(t, "traffic across certificate and root rotations")
	if bg.ok.Load() < 200 {
		t.Errorf("only %d requests succeeded", bg.ok.Load())
	}
}

// TestMTLSRefusals: each attempt is refused, logged, and gets nothing.
func TestMTLSRefusals(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "no"}
	e := startSecureMesh(t, p)
	td := e.m.TrustDomain()

	t.Run("csr for an identity the token does not prove", func(t *testing.T) {
		off := e.logOffset("control-plane")
		cl := cav1grpc.NewCertificateServiceClient(e.dialCP(t, e.tokenOf(t, "client.shop")))
		resp, err := cl.CreateCertificate(t.Context(), &cav1.CreateCertificateRequest{CsrPem: csrPEM(t, td, "shop", "payment")})
		if status.Code(err) != codes.PermissionDenied || resp != nil {
			t.Fatalf("CreateCertificate(payment) with client's token = %v, %v; want PermissionDenied", resp, err)
		}
		line, ok := e.waitLogLine("control-plane", off, 5*time.Second, func(l string) bool {
			return strings.Contains(l, "ca: refused certificate request") && strings.Contains(l, "reason=identity_mismatch")
		})
		if !ok {
			t.Fatal("no refusal in the control plane log")
		}
		t.Logf("logged: %s", line)
	})

	t.Run("stolen token replayed for another workload", func(t *testing.T) {
		stolen := e.tokenOf(t, "payment-1.shop")
		cc := e.dialCP(t, stolen)
		off := e.logOffset("control-plane")
		// As order-1: its certificate...
		_, err := cav1grpc.NewCertificateServiceClient(cc).CreateCertificate(t.Context(), &cav1.CreateCertificateRequest{CsrPem: csrPEM(t, td, "shop", "order")})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("CreateCertificate(order) with payment's token = %v; want PermissionDenied", err)
		}
		// ...and its config.
		err = adsAs(t, cc, "order-1.shop")
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("ADS as order-1.shop with payment's token = %v; want PermissionDenied", err)
		}
		for _, want := range []string{"reason=identity_mismatch", "requested_node=order-1.shop"} {
			if line, ok := e.waitLogLine("control-plane", off, 5*time.Second, func(l string) bool { return strings.Contains(l, want) }); !ok {
				t.Errorf("no log line with %s", want)
			} else {
				t.Logf("logged: %s", line)
			}
		}
	})

	t.Run("sidecar asking for another node's config", func(t *testing.T) {
		// A real sidecar, holding client's token (and client's service
		// account, so its certificate is issued), claims to be payment-1.
		off := e.logOffset("control-plane")
		ip := p.IP(50)
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "rogue.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = logf.Close() }()
		cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, mesh.BinarySidecar),
			"--workload=payment-1", "--namespace=shop", "--service-account=client", "--ip="+ip,
			"--xds-address="+e.m.ControlPlane().XDSAddress, "--ca-bundle="+e.m.TrustBundleFile(),
			"--token-file="+e.m.TokenFile("client.shop"), "--trust-domain="+td, "--log-level=debug")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		line, ok := e.waitLogLine("control-plane", off, 10*time.Second, func(l string) bool {
			return strings.Contains(l, "xds: refused request for another node") && strings.Contains(l, "authenticated_node=client.shop") &&
				strings.Contains(l, "requested_node=payment-1.shop")
		})
		if !ok {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("no refusal in the control plane log; rogue sidecar log:\n%s", b)
		}
		t.Logf("logged: %s", line)
		// It never gets config: not ready, and payment-1's real sidecar is
		// the only payment-1.shop the control plane serves.
		var ready int
		if err := func() error {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ip+":15000/ready", nil)
			if err != nil {
				return err
			}
			resp, err := plainHTTP.Do(req)
			if err != nil {
				return err
			}
			ready = resp.StatusCode
			return resp.Body.Close()
		}(); err == nil && ready == http.StatusOK {
			t.Fatal("the rogue sidecar is ready")
		}
		if r, _, err := e.get(t.Context(), paymentShort); err != nil || r.Instance != "payment-1" {
			t.Fatalf("payment after the attempt: %+v %v", r, err)
		}
	})

	t.Run("plaintext to a strict inbound port", func(t *testing.T) {
		w, _ := e.m.Workload("payment-1")
		off := e.logOffset(sidecarLog(w))
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+w.InboundAddress()+"/pay", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(mesh.HeaderTargetPort, "8080")
		resp, err := plainHTTP.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext request to a STRICT port was served")
			}
			t.Logf("plaintext request answered %s", resp.Status)
		} else {
			t.Logf("plaintext request failed: %v", err)
		}
		line, ok := e.waitLogLine(sidecarLog(w), off, 5*time.Second, func(l string) bool {
			return strings.Contains(l, "refused plaintext") || strings.Contains(l, "plaintext refused")
		})
		if !ok {
			t.Fatal("no refusal in payment-1's sidecar log")
		}
		t.Logf("logged: %s", line)
	})

	t.Run("plaintext ADS", func(t *testing.T) {
		// The xDS port speaks TLS only: a plaintext HTTP request gets no answer.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.m.ControlPlane().XDSAddress+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := plainHTTP.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("plaintext to the xDS port: %s", resp.Status)
			}
		}
	})
}

// sidecarLog is the launcher's log name of a workload's sidecar.
func sidecarLog(w launch.Workload) string { return w.NodeID() + "/sidecar" }

// adsAs opens an ADS stream naming node and returns the stream's error.
func adsAs(t *testing.T, cc grpc.ClientConnInterface, node string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	_ = st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.ClusterType})
	r, err := st.Recv()
	if err == nil {
		return fmt.Errorf("got a response (%d resources)", len(r.GetResources()))
	}
	return err
}

// TestMTLSControlPlaneDown: with the control plane down through a renewal
// point the sidecars keep serving on their certificates and keep retrying;
// when it comes back the renewal succeeds with no sidecar restart.
func TestMTLSControlPlaneDown(t *testing.T) {
	const lifetime = 20 * time.Second
	e := startSecureMesh(t, meshParams{Base: randomBase(), Payment2: "no"}, launch.WithCertLifetime(lifetime))
	pids := map[string]int{}
	for _, w := range e.m.Workloads() {
		pids[w.NodeID()] = e.m.SidecarPID(w.NodeID())
	}
	bg := e.startLoad(t, orderURL, 2)
	bg.waitOK(t, 20, 10*time.Second)

	// Wait for payment-1 to renew, then take the control plane down so that
	// its next renewal (at about half the lifetime) falls in the outage.
	first, err := e.sidecarCert(t.Context(), "payment-1.shop")
	if err != nil {
		t.Fatal(err)
	}
	var fresh sidecarCert
	deadline := time.Now().Add(lifetime)
	for {
		if fresh, err = e.sidecarCert(t.Context(), "payment-1.shop"); err == nil && fresh.Serial != first.Serial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment-1 did not renew within %s", lifetime)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Not a readiness wait: this positions the outage around payment-1's
	// next renewal point (about lifetime/2 after the renewal just seen).
	time.Sleep(lifetime/2 - 3*time.Second)
	if err := e.m.KillControlPlane(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("control plane killed; payment-1's certificate %s expires at %s", fresh.Serial, fresh.NotAfter.Format(time.RFC3339))

	// Renewal fails and is retried while traffic keeps flowing.
	w, _ := e.m.Workload("payment-1")
	deadline = time.Now().Add(8 * time.Second)
	for {
		c, err := e.sidecarCert(t.Context(), "payment-1.shop")
		if err == nil && c.Failures >= 3 {
			t.Logf("payment-1: %d failed renewals, still presenting %s", c.Failures, c.Serial)
			if c.Serial != fresh.Serial {
				t.Fatalf("serial changed to %s with the CA down", c.Serial)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment-1 did not fail renewal three times within 8s of the outage: %+v %v", c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := e.waitLogLine(sidecarLog(w), 0, time.Second, func(l string) bool { return strings.Contains(l, "renewal failed") }); !ok {
		t.Error("no renewal failure in payment-1's sidecar log")
	}
	// Keep it down for at least 6 s, traffic flowing all along.
	for time.Since(down) < 6*time.Second {
		bg.waitOK(t, 50, 10*time.Second)
	}
	t.Logf("with the control plane down for %s: %d ok, %d failed", time.Since(down).Round(time.Millisecond), bg.ok.Load(), bg.failed.Load())

	if err := e.m.StartControlPlane(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane back after %s", time.Since(down).Round(time.Millisecond))
	deadline = time.Now().Add(lifetime / 2)
	for {
		c, err := e.sidecarCert(t.Context(), "payment-1.shop")
		if err == nil && c.Serial != fresh.Serial {
			t.Logf("payment-1 renewed: %s, valid until %s", c.Serial, c.NotAfter.Format(time.RFC3339))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment-1 did not renew within %s of the control plane's return: %+v %v", lifetime/2, c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.waitAllConnected(t, 20*time.Second)
	bg.waitOK(t, 50, 10*time.Second)
	bg.report(t, "traffic across the control plane's outage")
	for id, pid := range pids {
		if now := e.m.SidecarPID(id); now != pid {
			t.Errorf("sidecar %s: pid %d, was %d", id, now, pid)
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("sidecar %s (pid %d) is gone: %v", id, pid, err)
		}
	}
}
