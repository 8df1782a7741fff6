package sidecar

import (
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/api/mesh"
)

// BenchmarkProxyPair measures one GET (1 KiB response) from a client to the
// app, directly and through the sidecar pair (outbound HTTP proxy, h2c
// tunnel, inbound, pooled HTTP/1.1 to the app), all on loopback, with
// keep-alive connections. "sequential" is one request at a time (latency);
// "parallel" runs GOMAXPROCS×4 concurrent clients (throughput).
//
//	cd sidecar && go test -run '^$' -bench BenchmarkProxyPair -benchtime 2s .
//
// Compare ns/op of mesh with direct: the difference is what the pair adds.
func BenchmarkProxyPair(b *testing.B) {
	e := newEnv(b)
	app := e.apps[0]
	direct := "http://" + app.addr() + "/bench"
	through := "http://" + e.client.addr(mesh.PortOutbound) + "/bench"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)

	do := func(b *testing.B, url, host string) {
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
	for _, tc := range []struct{ name, url, host string }{
		{"direct", direct, ""},
		{"mesh", through, "payment:8080"},
	} {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			do(b, tc.url, tc.host) // warm the connections
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				do(b, tc.url, tc.host)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b, tc.url, tc.host)
				}
			})
		})
	}
}
