package xds

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// scaleMesh is the registry of the control-plane scale benchmark
// (tests/bench/xdssim's layout): services Services in namespaces
// namespaces, perService WorkloadEntries each, interleaved so the first n
// cover every service, and an egress NetworkPolicy per namespace allowing
// it and the next one. moved changes the address of entry moved (-1: none).
func scaleMesh(services, namespaces, perService, moved int) string {
	var b strings.Builder
	for n := range namespaces {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-%03d}\n---\n", n)
		fmt.Fprintf(&b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: egress, namespace: ns-%03d}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: 53, protocol: UDP}]\n  - to:\n", n)
		for r := range 2 {
			fmt.Fprintf(&b, "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ns-%03d}}\n", (n+r)%namespaces)
		}
		b.WriteString("---\n")
	}
	for s := range services {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: svc-%04d, namespace: ns-%03d}\nspec:\n  selector: {app: svc-%04d}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n", s, s%namespaces, s)
	}
	for i := range services * perService {
		s, rep := i%services, i/services
		n := i + 1
		if i == moved {
			n += 1_000_000
		}
		fmt.Fprintf(&b, "apiVersion: weft.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {name: svc-%04d-%d, namespace: ns-%03d, labels: {app: svc-%04d}}\nspec: {address: 10.%d.%d.%d, serviceAccount: svc-%04d, ports: [{name: http, port: 8080}]}\n---\n",
			s, rep, s%namespaces, s, (n>>16)&0xff, (n>>8)&0xff, n&0xff, s)
	}
	return b.String()
}

// BenchmarkPush: one endpoint change pushed to N connected proxies (1,000
// services, 10,000 endpoints, egress policies scoping each proxy to 40
// services): registry state -> translation -> hashing -> snapshots. No
// streams are open, so it measures the server's work per change, not
// sending; the first iteration's connect is not timed.
func BenchmarkPush(b *testing.B) {
	for _, proxies := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("proxies=%d", proxies), func(b *testing.B) {
			states := [2]model.State{}
			for i := range states {
				st, err := file.Parse("mesh.yaml", []byte(scaleMesh(1000, 50, 10, i-1)))
				if err != nil {
					b.Fatal(err)
				}
				states[i] = st
			}
			s := New(meshconfig.Default())
			s.Update(states[0])
			s.Push()
			for i := range proxies {
				s.nodeConnected(context.Background(), fmt.Sprintf("svc-%04d-%d.ns-%03d", i%1000, i/1000, (i%1000)%50))
			}
			cpu0 := cpuTime(b)
			n := 0
			for i := 0; b.Loop(); i++ {
				s.Update(states[(i+1)%2])
				s.Push()
				n++
			}
			// CPU (all threads, GC included) is steadier than wall time on
			// a shared machine.
			b.ReportMetric((cpuTime(b)-cpu0).Seconds()*1000/float64(n), "cpu-ms/op")
		})
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
