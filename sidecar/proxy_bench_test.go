package sidecar

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/transport"
)

// BenchmarkProxyPair measures one GET (1 KiB response) from a client to the
// app, directly and through the sidecar pair (outbound HTTP proxy, tunnel,
// inbound, pooled HTTP/1.1 to the app), all on loopback, with keep-alive
// connections: "mesh" over the plaintext h2c tunnel, "mesh-mtls" over the
// mTLS tunnel of two sidecars that got their identity from a CA (what a
// deployment runs: HTTP/1.1 keep-alive between the sidecars for these
// HTTP/1.1 requests), "mesh-mtls-h2" the same with the client sidecar's
// HTTP/1.1 pool off (every request over its HTTP/2 connection);
// "h2client-mesh-mtls" sends the same requests as HTTP/2 (h2c) to the
// client sidecar (BenchmarkProxyPairGRPC makes gRPC calls through the
// same pair). "sequential" is one request at a time (latency);
// "parallel" runs GOMAXPROCS×4 concurrent clients (throughput).
//
//	cd sidecar && go test -run '^$' -bench BenchmarkProxyPair -benchtime 2s .
//
// Compare ns/op of mesh with direct: the difference is what the pair adds.
// cpu-ns/op is the CPU time (user + system, getrusage) the whole process
// spent per request: load generator, sidecars and app together, so the
// difference between two cases is what their paths cost, and it holds on
// a busy machine where ns/op (wall time) does not.
func BenchmarkProxyPair(b *testing.B) {
	e := newEnv(b)
	app := e.apps[0]
	direct := "http://" + app.addr() + "/bench"
	through := "http://" + e.client.addr(mesh.PortOutbound) + "/bench"
	me := newMTLSEnv(b, time.Hour, false)
	throughMTLS := "http://" + me.client.addr(mesh.PortOutbound) + "/bench"
	me2 := newMTLSEnv(b, time.Hour, false, transport.WithHTTP1Pool(false))
	throughMTLS2 := "http://" + me2.client.addr(mesh.PortOutbound) + "/bench"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	h2client := &http.Client{Transport: &http.Transport{Protocols: h2, DisableCompression: true}}
	b.Cleanup(h2client.CloseIdleConnections)

	do := func(b *testing.B, client *http.Client, url, host string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != 1024 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	payment := svcPayment + ":" + strconv.Itoa(paymentPort)
	for _, tc := range []struct {
		name      string
		url, host string
		client    *http.Client
	}{
		{"direct", direct, "", client},
		{"mesh", through, "payment:8080", client},
		{"mesh-mtls", throughMTLS, payment, client},
		{"mesh-mtls-h2", throughMTLS2, payment, client},
		{"h2client-mesh-mtls", throughMTLS, payment, h2client},
	} {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			do(b, tc.client, tc.url, tc.host) // warm the connections
			b.ReportAllocs()
			cpu := cpuTime(b)
			b.ResetTimer()
			for b.Loop() {
				do(b, tc.client, tc.url, tc.host)
			}
			b.StopTimer()
			reportCPU(b, cpuTime(b)-cpu)
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(4)
			b.ReportAllocs()
			cpu := cpuTime(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b, tc.client, tc.url, tc.host)
				}
			})
			b.StopTimer()
			reportCPU(b, cpuTime(b)-cpu)
		})
	}
}

// BenchmarkProxyPairGRPC makes gRPC unary calls (grpc.health.v1 Check,
// grpc-go client and server) through the mTLS sidecar pair: h2c to the
// client sidecar, HTTP/2 over mTLS between the sidecars, h2c to the app.
//
//	cd sidecar && go test -run '^$' -bench BenchmarkProxyPairGRPC -benchtime 2s .
func BenchmarkProxyPairGRPC(b *testing.B) {
	me := newMTLSEnv(b, time.Hour, false)
	hc := healthgrpc.NewHealthClient(dialGRPC(b, me))
	req := &healthgrpc.HealthCheckRequest{}
	check := func(b *testing.B) {
		resp, err := hc.Check(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			b.Fatalf("status %v", resp.GetStatus())
		}
	}
	b.Run("grpc-mesh-mtls/sequential", func(b *testing.B) {
		check(b) // warm the connections
		b.ReportAllocs()
		cpu := cpuTime(b)
		b.ResetTimer()
		for b.Loop() {
			check(b)
		}
		b.StopTimer()
		reportCPU(b, cpuTime(b)-cpu)
	})
	b.Run("grpc-mesh-mtls/parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.ReportAllocs()
		cpu := cpuTime(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(b)
			}
		})
		b.StopTimer()
		reportCPU(b, cpuTime(b)-cpu)
	})
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
