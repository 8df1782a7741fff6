package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/injector/inject"
)

// benchPod is a typical Deployment pod: two containers with ports,
// probes, resources and env, as the ReplicaSet controller creates it.
const benchPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7c9f8d6b5-","labels":{"app":"web","pod-template-hash":"7c9f8d6b5","version":"v1"},
"annotations":{"prometheus.io/scrape":"true"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7c9f8d6b5","uid":"4b1f0a3e-0000-4000-8000-000000000001","controller":true,"blockOwnerDeletion":true}]},
"spec":{"serviceAccountName":"web","containers":[
{"name":"app","image":"registry.example/web:1.4.2","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],
 "env":[{"name":"LOG_LEVEL","value":"info"},{"name":"POD_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}}],
 "resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}},
 "readinessProbe":{"httpGet":{"path":"/ready","port":8080},"periodSeconds":5},
 "livenessProbe":{"httpGet":{"path":"/live","port":"http"},"periodSeconds":10}},
{"name":"metrics","image":"registry.example/exporter:0.9","ports":[{"containerPort":9100}]}],
"restartPolicy":"Always","terminationGracePeriodSeconds":30}}`

// BenchmarkAdmission measures the injector's admission latency under a
// burst of pod creations: the real webhook server (Run) over TLS on a
// random loopback port, and clients POSTing AdmissionReviews of a
// Deployment pod on CREATE as the API server does (keep-alive
// connections, HTTP/2 when negotiated). Each iteration is one burst of
// -burst reviews sent by `concurrency` workers at once; every response is
// checked (same UID, allowed, a JSONPatch). Reports the latency p50/p99
// of single reviews over all bursts.
func BenchmarkAdmission(b *testing.B) {
	for _, c := range []struct {
		burst, concurrency int
	}{{100, 1}, {100, 10}, {500, 50}} {
		b.Run(fmt.Sprintf("burst=%d/concurrency=%d", c.burst, c.concurrency), func(b *testing.B) {
			url, client := startBenchWebhook(b)
			var mu sync.Mutex
			var lats []time.Duration
			for b.Loop() {
				jobs := make(chan int)
				var wg sync.WaitGroup
				errc := make(chan error, c.concurrency)
				for range c.concurrency {
					wg.Go(func() {
						for i := range jobs {
							d, err := admit(b.Context(), client, url, i)
							if err != nil {
								select {
								case errc <- err:
								default:
								}
								continue
							}
							mu.Lock()
							lats = append(lats, d)
							mu.Unlock()
						}
					})
				}
				for i := range c.burst {
					jobs <- i
				}
				close(jobs)
				wg.Wait()
				select {
				case err := <-errc:
					b.Fatal(err)
				default:
				}
			}
			slices.Sort(lats)
			q := func(p float64) float64 { return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(len(lats))/float64(b.N), "reviews/op")
		})
	}
}

// startBenchWebhook runs the webhook on a random 127.x loopback address
// with a fresh serving certificate and returns its URL and a client that
// trusts it.
func startBenchWebhook(b *testing.B) (string, *http.Client) {
	b.Helper()
	dir := b.TempDir()
	pool := writeCert(b, dir, "bench")
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	ip := fmt.Sprintf("127.%d.%d.%d", 10+rand.IntN(90), rand.IntN(256), 1+rand.IntN(250))
	go func() {
		errc <- Run(ctx, Config{
			ListenAddress: net.JoinHostPort(ip, "0"),
			CertFile:      filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
			Template: inject.DefaultTemplate(), Logger: slog.New(slog.DiscardHandler),
			Ready: func(a net.Addr) { addrc <- a },
		})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-addrc:
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"},
			ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64,
		}
		b.Cleanup(tr.CloseIdleConnections)
		return "https://" + a.String() + mesh.InjectorPath, &http.Client{Timeout: 10 * time.Second, Transport: tr}
	case err := <-errc:
		b.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		b.Fatal("webhook did not listen within 10s")
	}
	return "", nil
}

// admit sends one review and checks the response.
func admit(ctx context.Context, c *http.Client, url string, i int) (time.Duration, error) {
	uid := types.UID(fmt.Sprintf("uid-%d", i))
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uid,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "shop", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: []byte(benchPod)},
		},
	})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	var out admissionv1.AdmissionReview
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("review %d: HTTP %d: %s", i, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("review %d: %w", i, err)
	}
	if r := out.Response; r == nil || r.UID != uid || !r.Allowed || r.PatchType == nil || len(r.Patch) == 0 {
		return 0, fmt.Errorf("review %d: not an allowed patch for %s: %s", i, uid, raw)
	}
	return d, nil
}
