package local

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/examples/shop/app"
)

// changeBound is how fast a file change must show in the traffic.
const changeBound = time.Second

func TestRoutingByEachNameForm(t *testing.T) {
	e := startMesh(t, meshParams{Base: randomBase(), Payment2: "no"})
	for _, url := range []string{paymentLong, paymentSvc, paymentNS, paymentShort} {
		t.Run(strings.TrimPrefix(url, "http://"), func(t *testing.T) {
			for range 3 {
				r, _, err := e.get(t.Context(), url)
				if err != nil {
					t.Fatal(err)
				}
				if r.Service != app.RolePayment || r.Instance != "payment-1" {
					t.Fatalf("GET %s served by %s/%s, want payment/payment-1", url, r.Service, r.Instance)
				}
			}
		})
	}
	t.Run("app to app through both sidecars", func(t *testing.T) {
		// order calls payment as "payment:8080" and inventory as
		// "inventory.shop:8080" through its own sidecar.
		r, _, err := e.get(t.Context(), orderURL)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range r.Calls {
			if c.Error != "" || c.Reply == nil {
				t.Fatalf("order's call to %s failed: %+v", c.URL, c)
			}
			got[c.Service] = c.Reply.Instance
		}
		if r.Instance != "order-1" || got[app.RolePayment] != "payment-1" || got[app.RoleInventory] != "inventory-1" {
			t.Fatalf("order reply %+v, calls served by %v", r, got)
		}
	})
	t.Run("unknown service is not routed", func(t *testing.T) {
		_, status, err := e.get(t.Context(), "http://nosuch.shop:8080/")
		if err == nil || status == http.StatusOK {
			t.Fatalf("GET nosuch.shop: status %d, err %v; want a non-200 answer", status, err)
		}
		t.Logf("nosuch.shop: status %d", status)
	})
}

func TestEndpointChangesWithinOneSecond(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "no"}
	e := startMesh(t, p)
	// Traffic through order's sidecar runs all along and must not fail.
	bg := e.startLoad(t, orderURL, 2)
	bg.waitOK(t, 20, 10*time.Second)

	steps := []struct {
		name     string
		payment2 string
		serving  bool
	}{
		{"added (selector now matches)", "yes", true},
		{"removed (entry deleted from the file)", "absent", false},
		{"added (entry back in the file)", "yes", true},
		{"drained (selector no longer matches)", "no", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p.Payment2 = s.payment2
			at := e.writeMesh(t, p)
			var took time.Duration
			if s.serving {
				took = e.waitServedBy(t, paymentLong, "payment-2", at, 10*time.Second)
				t.Logf("payment-2 serving %s after the file changed", took.Round(time.Millisecond))
			} else {
				took = e.waitDrained(t, paymentLong, "payment-2", at, 20, 10*time.Second)
				t.Logf("payment-2 drained %s after the file changed", took.Round(time.Millisecond))
			}
			if took >= changeBound {
				t.Errorf("change took %s, want < %s", took.Round(time.Millisecond), changeBound)
			}
		})
	}
	bg.report(t, "traffic during endpoint changes")
}

func TestBadFilesAreRejectedWhileTrafficContinues(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "no"}
	e := startMesh(t, p)
	bg := e.startLoad(t, orderURL, 2)
	bg.waitOK(t, 20, 10*time.Second)
	base := filepath.Base(e.meshFile)

	cases := []struct {
		name  string
		extra string
		// The error must name the line holding marker (the first after
		// after), or up to slack lines before it, and, when not empty, the
		// field.
		after, marker, field string
		slack                int
	}{
		{
			name:   "malformed YAML",
			extra:  "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n\tnamespace: shop\n",
			marker: "\tnamespace: shop",
			// go.yaml.in/yaml/v3 places a scanner error (this tab) at the
			// end of the previous token, one line up.
			slack: 1,
		},
		{
			name:   "unknown kind",
			extra:  "apiVersion: v1\nkind: Gizmo\nmetadata:\n  name: g\n  namespace: shop\n",
			marker: "kind: Gizmo", field: "kind",
		},
		{
			name:  "selector that matches nothing",
			extra: "apiVersion: v1\nkind: Service\nmetadata:\n  name: ghost\n  namespace: shop\nspec:\n  selector:\n    app: ghost\n  ports:\n    - name: http\n      port: 8080\n      targetPort: http\n",
			after: "name: ghost", marker: "selector:", field: "spec.selector",
		},
		{
			name:  "port collision",
			extra: "apiVersion: v1\nkind: Service\nmetadata:\n  name: dup\n  namespace: shop\nspec:\n  selector:\n    app: payment\n  ports:\n    - name: http\n      port: 8080\n      targetPort: http\n    - name: http-alt\n      port: 8080\n      targetPort: http\n",
			after: "name: http-alt", marker: "port: 8080", field: "spec.ports[1].port",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := p
			bad.Extra = c.extra
			data := renderMesh(t, bad)
			line := lineOf(t, data, c.after, c.marker)
			lines := make([]string, 0, c.slack+1)
			for l := line - c.slack; l <= line; l++ {
				lines = append(lines, strconv.Itoa(l))
			}
			loc := regexp.MustCompile(regexp.QuoteMeta(base) + ":(" + strings.Join(lines, "|") + `)\b`)
			off := e.logOffset("control-plane")
			e.writeFile(t, data)
			msg, ok := e.waitLogLine("control-plane", off, 5*time.Second, func(l string) bool {
				return loc.MatchString(l) && strings.Contains(l, c.field)
			})
			if !ok {
				t.Fatalf("control plane log has no line matching %s and field %q after the bad file", loc, c.field)
			}
			t.Logf("rejected: %s", msg)
			// The last good state is still in force.
			if r, _, err := e.get(t.Context(), paymentShort); err != nil || r.Instance != "payment-1" {
				t.Fatalf("after the bad file: %+v %v", r, err)
			}
			bg.waitOK(t, 10, 5*time.Second)
			e.writeMesh(t, p)
		})
	}
	t.Run("a good file after the bad ones is applied", func(t *testing.T) {
		good := p
		good.Payment2 = "yes"
		at := e.writeMesh(t, good)
		took := e.waitServedBy(t, paymentLong, "payment-2", at, 10*time.Second)
		t.Logf("payment-2 serving %s after the good file", took.Round(time.Millisecond))
	})
	bg.report(t, "traffic during bad files")
}

func TestControlPlaneKilledUnderLoad(t *testing.T) {
	p := meshParams{Base: randomBase(), Payment2: "no"}
	e := startMesh(t, p)
	pids := map[string]int{}
	for _, w := range e.m.Workloads() {
		pids[w.NodeID()] = e.m.SidecarPID(w.NodeID())
	}
	bg := e.startLoad(t, orderURL, 4)
	bg.waitOK(t, 50, 10*time.Second)

	if err := e.m.KillControlPlane(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("control plane killed (SIGKILL) under load")
	bg.waitOK(t, 300, 15*time.Second)
	t.Logf("%d requests ok, %d failed with the control plane down for %s", bg.ok.Load(), bg.failed.Load(), time.Since(killed).Round(time.Millisecond))

	if err := e.m.StartControlPlane(t.Context()); err != nil {
		t.Fatal(err)
	}
	took := e.waitAllConnected(t, 20*time.Second)
	t.Logf("control plane restarted; all sidecars reconnected and ACKed in %s", took.Round(time.Millisecond))

	// A change made now reaches the sidecars that never restarted.
	p.Payment2 = "yes"
	at := e.writeMesh(t, p)
	took = e.waitServedBy(t, paymentLong, "payment-2", at, 10*time.Second)
	t.Logf("new change (payment-2 added) serving through the same client sidecar %s after the edit", took.Round(time.Millisecond))
	// And through order's sidecar: order's calls to payment reach payment-2.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _, err := e.get(t.Context(), orderURL)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Calls) > 0 && r.Calls[0].Reply != nil && r.Calls[0].Reply.Instance == "payment-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("order's sidecar never sent to payment-2 after the restart")
		}
	}
	bg.report(t, "traffic across the control plane's kill and restart")

	for id, pid := range pids {
		if now := e.m.SidecarPID(id); now != pid {
			t.Errorf("sidecar %s: pid %d, was %d", id, now, pid)
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("sidecar %s (pid %d) is gone: %v", id, pid, err)
		}
	}
}
