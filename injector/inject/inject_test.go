package inject

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testTemplate() Template {
	t := DefaultTemplate()
	t.ProxyImage = "example.invalid/weft-sidecar:test"
	return t
}

func readPod(t *testing.T, file string) (*corev1.Pod, []byte) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &pod, js
}

// TestGolden injects every testdata/<name>.in.yaml and compares the patched
// pod with <name>.golden.yaml and the patch with <name>.patch.json, both
// after decoding. It also applies the patch to the raw input (as the API
// server does) and checks that it yields the same pod, and that injecting
// the result again changes nothing.
func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		tpl     func(*Template)
		mc      meshconfig.Config
		skipped string
	}{
		{name: "basic"},
		{name: "generatename", mc: meshconfig.Config{TrustDomain: "example.org"}},
		{name: "probes"},
		{name: "annotations", tpl: func(t *Template) {
			t.ProxyCPULimit = "2"
			t.ExcludeOutboundCIDRs = "192.168.0.0/16" // replaced by the annotation
		}},
		{name: "initcontainers", tpl: func(t *Template) {
			t.ExcludeOutboundCIDRs = "169.254.169.254/32"
			t.ExcludeInboundPorts = "15020,9000"
			t.LogLevel = "debug"
		}},
		{name: "legacy", tpl: func(t *Template) { t.LegacySidecar = true }},
		// DNS capture: by the pod's annotation; on mesh-wide but refused
		// by the pod's annotation (no DNS flags).
		{name: "dns"},
		{name: "dnsoptout", mc: meshconfig.Config{DNSCapture: true}},
		{name: "optedout", skipped: SkipOptedOut},
		{name: "hostnetwork", skipped: SkipHostNetwork},
		{name: "hasproxy", skipped: SkipAlreadyInjected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl := testTemplate()
			if tc.tpl != nil {
				tc.tpl(&tpl)
			}
			in, raw := readPod(t, filepath.Join("testdata", tc.name+".in.yaml"))
			orig := in.DeepCopy()
			res, err := Pod(in, tc.mc, tpl)
			if err != nil {
				t.Fatalf("Pod: %v", err)
			}
			if diff := cmp.Diff(orig, in); diff != "" {
				t.Fatalf("input pod modified (-before +after):\n%s", diff)
			}
			if res.Skipped != tc.skipped || res.Injected != (tc.skipped == "") {
				t.Fatalf("Injected=%v Skipped=%q, want skipped %q", res.Injected, res.Skipped, tc.skipped)
			}
			if tc.skipped != "" {
				if string(res.Patch) != "[]" {
					t.Errorf("patch = %s, want []", res.Patch)
				}
				if diff := cmp.Diff(in, res.Pod); diff != "" {
					t.Errorf("skipped pod changed (-in +out):\n%s", diff)
				}
				return
			}

			// The patch, applied to the raw input, gives the patched pod.
			p, err := jsonpatch.DecodePatch(res.Patch)
			if err != nil {
				t.Fatalf("decode patch %s: %v", res.Patch, err)
			}
			patched, err := p.Apply(raw)
			if err != nil {
				t.Fatalf("apply patch: %v\npatch: %s", err, res.Patch)
			}
			var viaPatch corev1.Pod
			if err := json.Unmarshal(patched, &viaPatch); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(res.Pod, &viaPatch); diff != "" {
				t.Errorf("patch applied to the raw input differs from Result.Pod (-pod +patched):\n%s", diff)
			}

			// Golden pod and patch.
			checkGolden(t, filepath.Join("testdata", tc.name+".golden.yaml"), res.Pod, func(b []byte) (any, error) {
				var p corev1.Pod
				return &p, yaml.UnmarshalStrict(b, &p)
			}, yaml.Marshal)
			checkGolden(t, filepath.Join("testdata", tc.name+".patch.json"), json.RawMessage(res.Patch), func(b []byte) (any, error) {
				var ops []map[string]any
				err := json.Unmarshal(b, &ops)
				return ops, err
			}, func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") })

			// Idempotent: injecting the injected pod again is a no-op.
			again, err := Pod(res.Pod, tc.mc, tpl)
			if err != nil {
				t.Fatalf("second Pod: %v", err)
			}
			if again.Injected || again.Skipped != SkipAlreadyInjected || string(again.Patch) != "[]" {
				t.Errorf("second injection: Injected=%v Skipped=%q patch=%s", again.Injected, again.Skipped, again.Patch)
			}
			if diff := cmp.Diff(res.Pod, again.Pod); diff != "" {
				t.Errorf("second injection changed the pod:\n%s", diff)
			}
		})
	}
}

// checkGolden compares got with the golden file after decoding both with
// decode (or rewrites the file with -update).
func checkGolden(t *testing.T, file string, got any, decode func([]byte) (any, error), encode func(any) ([]byte, error)) {
	t.Helper()
	enc, err := encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(file, append(enc, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	w, err := decodeValue(decode, want)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	g, err := decodeValue(decode, enc)
	if err != nil {
		t.Fatalf("decode got: %v", err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func decodeValue(decode func([]byte) (any, error), b []byte) (any, error) {
	return decode(b)
}

func TestRecord(t *testing.T) {
	in, _ := readPod(t, filepath.Join("testdata", "probes.in.yaml"))
	res, err := Pod(in, meshconfig.Config{}, testTemplate())
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := json.Unmarshal([]byte(res.Pod.Annotations[mesh.AnnotationInjected]), &rec); err != nil {
		t.Fatal(err)
	}
	want := Record{
		Version: RecordVersion, Sidecar: mesh.ContainerSidecar, Native: true, Init: mesh.ContainerInit,
		Volumes: []string{mesh.VolumeToken, mesh.VolumeTrustBundle, mesh.VolumeXtablesLock},
		Probes:  []string{"web/livez", "web/readyz", "web/startupz"},
		Capture: Capture{IncludeInboundPorts: "*", ExcludeInboundPorts: "15020", IncludeOutboundPorts: "*"},
	}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	// The proxy carries the original probes, keyed by the rewritten path.
	var env string
	for _, c := range res.Pod.Spec.InitContainers {
		for _, e := range c.Env {
			if c.Name == mesh.ContainerSidecar && e.Name == mesh.EnvAppProbes {
				env = e.Value
			}
		}
	}
	var probes map[string]AppProbe
	if err := json.Unmarshal([]byte(env), &probes); err != nil {
		t.Fatalf("%s=%q: %v", mesh.EnvAppProbes, env, err)
	}
	wantProbes := map[string]AppProbe{
		"/app-health/web/livez":    {Port: 8080, Path: "/livez", HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "live"}}},
		"/app-health/web/readyz":   {Port: 9090, Path: "/readyz", Scheme: corev1.URISchemeHTTP},
		"/app-health/web/startupz": {Port: 9090, Path: "/started"},
	}
	if diff := cmp.Diff(wantProbes, probes); diff != "" {
		t.Errorf("%s (-want +got):\n%s", mesh.EnvAppProbes, diff)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		tpl  func(*Template)
		want string
	}{
		{name: "bad port", ann: map[string]string{mesh.AnnotationExcludeOutboundPorts: "80,http"}, want: `annotation weft.dev/exclude-outbound-ports: "http" is not a port`},
		{name: "port zero", ann: map[string]string{mesh.AnnotationIncludeOutboundPorts: "0"}, want: `"0" is not a port`},
		{name: "port too big", ann: map[string]string{mesh.AnnotationExcludeInboundPorts: "70000"}, want: `"70000" is not a port`},
		{name: "star not allowed", ann: map[string]string{mesh.AnnotationExcludeInboundPorts: "*"}, want: `"*" is not allowed here`},
		{name: "bad dns capture", ann: map[string]string{mesh.AnnotationDNSCapture: "yes please"}, want: `annotation weft.dev/dns-capture: "yes please" is not true or false`},
		{name: "bad cidr", ann: map[string]string{mesh.AnnotationExcludeOutboundCIDRs: "10.0.0.0/33"}, want: `annotation weft.dev/exclude-outbound-cidrs: "10.0.0.0/33" is not a CIDR`},
		{name: "bad quantity", ann: map[string]string{mesh.AnnotationProxyMemory: "lots"}, want: `annotation weft.dev/proxy-memory: "lots"`},
		{name: "request above limit", ann: map[string]string{mesh.AnnotationProxyCPU: "2", mesh.AnnotationProxyCPULimit: "1"}, want: "proxy cpu request 2 is above its limit 1"},
		{name: "bad template", tpl: func(t *Template) { t.ProxyImage = ""; t.XDSAddress = "nohost" }, want: "inject: template: proxyImage: must be set"},
		{name: "short token", tpl: func(t *Template) { t.TokenExpirationSeconds = 60 }, want: "tokenExpirationSeconds: 60"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{}
			pod.Name, pod.Namespace, pod.Annotations = "p", "ns", tc.ann
			pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "x"}}
			tpl := testTemplate()
			if tc.tpl != nil {
				tc.tpl(&tpl)
			}
			_, err := Pod(pod, meshconfig.Config{}, tpl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "inject: pod ns/p: ") {
				t.Errorf("err = %v, want the pod named", err)
			}
		})
	}
	if _, err := Pod(nil, meshconfig.Config{}, testTemplate()); err == nil {
		t.Error("nil pod: no error")
	}
}
