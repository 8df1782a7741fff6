package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
)

func testHandler(t *testing.T) *Handler {
	t.Helper()
	tpl := inject.DefaultTemplate()
	tpl.ProxyImage = "example.invalid/weft-sidecar:test"
	h, err := NewHandler(meshconfig.Config{}, tpl, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`

func review(t *testing.T, op admissionv1.Operation, resource, sub, object string) []byte {
	t.Helper()
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         "uid-1",
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    metav1.GroupVersionResource{Version: "v1", Resource: resource},
			SubResource: sub,
			Namespace:   "shop",
			Operation:   op,
			Object:      runtime.RawExtension{Raw: []byte(object)},
		},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, h http.Handler, body []byte, contentType string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, mesh.InjectorPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	rec := &recorder{header: http.Header{}, code: 200}
	h.ServeHTTP(rec, req)
	return rec.code, rec.body.Bytes()
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func TestHandler(t *testing.T) {
	h := testHandler(t)
	tests := []struct {
		name      string
		body      []byte
		ct        string
		code      int
		allowed   bool
		patched   bool
		errSubstr string
	}{
		{name: "pod create is injected", body: review(t, admissionv1.Create, "pods", "", podJSON), code: 200, allowed: true, patched: true},
		{name: "pod update untouched", body: review(t, admissionv1.Update, "pods", "", podJSON), code: 200, allowed: true},
		{name: "subresource untouched", body: review(t, admissionv1.Create, "pods", "binding", podJSON), code: 200, allowed: true},
		{name: "other resource untouched", body: review(t, admissionv1.Create, "services", "", `{}`), code: 200, allowed: true},
		{name: "opted out", body: review(t, admissionv1.Create, "pods", "", strings.Replace(podJSON, `"app":"web"`, `"weft.dev/inject":"disabled"`, 1)), code: 200, allowed: true},
		{name: "bad annotation denied", body: review(t, admissionv1.Create, "pods", "", strings.Replace(podJSON, `"labels"`, `"annotations":{"weft.dev/exclude-outbound-cidrs":"nope"},"labels"`, 1)), code: 200, errSubstr: `annotation weft.dev/exclude-outbound-cidrs: "nope" is not a CIDR`},
		{name: "bad pod denied", body: review(t, admissionv1.Create, "pods", "", `{"spec":{"containers":7}}`), code: 200, errSubstr: "decode pod"},
		{name: "not json", body: []byte("{"), code: 400},
		{name: "wrong kind", body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), code: 400},
		{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), code: 400},
		{name: "wrong content type", body: review(t, admissionv1.Create, "pods", "", podJSON), ct: "text/plain", code: 415},
		{name: "too big", body: append(review(t, admissionv1.Create, "pods", "", podJSON), bytes.Repeat([]byte(" "), MaxBodyBytes)...), code: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ct
			if ct == "" {
				ct = "application/json"
			}
			code, body := post(t, h, tc.body, ct)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if tc.code != 200 {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			if out.Request != nil || out.Response == nil || out.Response.UID != "uid-1" || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Fatalf("bad envelope: %s", body)
			}
			r := out.Response
			if tc.errSubstr != "" {
				if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, tc.errSubstr) {
					t.Fatalf("want denial with %q, got %s", tc.errSubstr, body)
				}
				return
			}
			if r.Allowed != tc.allowed || (r.Patch != nil) != tc.patched {
				t.Fatalf("allowed=%v patch=%q, want allowed=%v patched=%v", r.Allowed, r.Patch, tc.allowed, tc.patched)
			}
			if !tc.patched {
				return
			}
			if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("patchType %v", r.PatchType)
			}
			p, err := jsonpatch.DecodePatch(r.Patch)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply([]byte(podJSON))
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			var pod corev1.Pod
			if err := json.Unmarshal(got, &pod); err != nil {
				t.Fatal(err)
			}
			if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[1].Name != mesh.ContainerSidecar {
				t.Errorf("patched pod has no sidecar: %s", got)
			}
		})
	}
	t.Run("GET refused", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, mesh.InjectorPath, nil)
		rec := &recorder{header: http.Header{}, code: 200}
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", rec.code)
		}
	})
}

func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":` + podJSON + `}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":{"metadata":{"annotations":{"weft.dev/include-outbound-ports":"*"}},"spec":{"containers":[{"name":"a","livenessProbe":{"httpGet":{"port":"x"}}}]}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"request":null}`))
	tpl := inject.DefaultTemplate()
	h, err := NewHandler(meshconfig.Config{}, tpl, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReview(b)
		if err != nil {
			if r != nil {
				t.Fatal("review returned with an error")
			}
			return
		}
		if r.Request == nil || r.Request.UID == "" {
			t.Fatalf("accepted a review without request/uid: %q", b)
		}
		resp := h.Review(r.Request)
		if resp.UID != r.Request.UID {
			t.Fatalf("uid %q != %q", resp.UID, r.Request.UID)
		}
		if resp.Patch != nil {
			if _, err := jsonpatch.DecodePatch(resp.Patch); err != nil {
				t.Fatalf("invalid patch %s: %v", resp.Patch, err)
			}
		}
	})
}

// writeCert writes a self-signed serving pair for 127.0.0.1 with the given
// common name and returns the certificate pool that trusts it.
func writeCert(t testing.TB, dir, cn string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write to temp files and rename, as a Secret volume update does.
	for name, block := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "PRIVATE KEY", Bytes: kb}} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestRunTLS serves over TLS on a random loopback port, injects through a
// real HTTPS round trip, rotates the serving certificate and checks that
// new connections get the new one without a restart, then shuts down.
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	pool1 := writeCert(t, dir, "first")
	tpl := inject.DefaultTemplate()
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{
			ListenAddress: "127.0.0.1:0",
			CertFile:      filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
			Template: tpl, Logger: slog.New(slog.DiscardHandler),
			Ready: func(a net.Addr) { addrc <- a },
		})
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("webhook did not listen within 10s")
	}
	url := "https://" + addr.String()

	client := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
		}}
	}
	do := func(c *http.Client, method, path string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, url+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	if code, _, err := do(client(pool1), http.MethodGet, "/healthz", nil); err != nil || code != 200 {
		t.Fatalf("healthz: %d %v", code, err)
	}
	code, body, err := do(client(pool1), http.MethodPost, mesh.InjectorPath, review(t, admissionv1.Create, "pods", "", podJSON))
	if err != nil || code != 200 || !strings.Contains(string(body), `"patchType":"JSONPatch"`) {
		t.Fatalf("inject over TLS: %d %v %s", code, err, body)
	}

	// Rotate: after the reload interval, new handshakes use the new pair.
	time.Sleep(10 * time.Millisecond) // distinct mtimes on coarse filesystems
	pool2 := writeCert(t, dir, "second")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := do(client(pool2), http.MethodGet, "/healthz", nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate not served within 5s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, err := do(client(pool1), http.MethodGet, "/healthz", nil); err == nil {
		t.Error("old certificate still served after rotation")
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

func TestCertReloaderKeepsOldOnBadPair(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "first")
	r, err := NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	r.interval = 0
	c1, _ := r.GetCertificate(nil)
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := r.GetCertificate(nil)
	if err != nil || c2 != c1 {
		t.Fatalf("bad pair: got %p %v, want the old certificate %p", c2, err, c1)
	}
	if _, err := NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key: no error")
	}
}
