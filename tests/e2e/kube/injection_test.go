package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/injector/inject"
	"github.com/weftmesh/weft/tests/kubeharness"
)

const (
	nsMesh      = "shop"  // labelled weft.dev/inject=enabled
	nsPlain     = "plain" // unlabelled
	webhookName = "inject.weft.dev"
	proxyImage  = "example.invalid/weft-sidecar:e2e"
)

func TestInjection(t *testing.T) {
	c := kubeharness.Start(t, kubeharness.WithControllerManager())
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	client := c.Client

	// The real weft-injector on a loopback address of its own, serving a
	// certificate from the cluster CA.
	ip := kubeharness.RandomLoopback()
	port, err := kubeharness.FreePort(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	certPEM, keyPEM, err := c.CA.IssueServing("weft-injector", []net.IP{ip})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	injector := c.StartProcess(t, mesh.BinaryInjector, filepath.Join(binDir, mesh.BinaryInjector),
		"serve", "--listen="+addr, "--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--proxy-image="+proxyImage, "--log-level=debug")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.CertPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	if err := injector.WaitReady(ctx, hc, "https://"+addr+"/healthz", func(code int, _ []byte) bool { return code == 200 }); err != nil {
		t.Fatal(err)
	}

	if err := c.CreateNamespace(ctx, nsMesh, map[string]string{mesh.LabelInject: mesh.InjectEnabled}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateNamespace(ctx, nsPlain, nil); err != nil {
		t.Fatal(err)
	}
	registerWebhook(ctx, t, c, "https://"+addr+mesh.InjectorPath)

	// The API server picks webhook configurations up asynchronously: wait
	// until a dry-run pod comes back injected.
	kubeharness.WaitFor(ctx, t, "webhook active", func() (bool, string) {
		p, err := client.CoreV1().Pods(nsMesh).Create(ctx, pod("probe", nil, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		return isInjected(p), "dry-run pod not injected yet"
	})

	t.Run("deployment pods are injected", func(t *testing.T) {
		replicas := int32(3)
		sel := map[string]string{"app": "web"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec:       pod("", nil, nil).Spec,
				},
			},
		}
		if _, err := client.AppsV1().Deployments(nsMesh).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var pods []corev1.Pod
		kubeharness.WaitFor(ctx, t, "3 pods from the Deployment", func() (bool, string) {
			l, err := client.CoreV1().Pods(nsMesh).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(sel).String()})
			if err != nil {
				return false, err.Error()
			}
			pods = l.Items
			return len(pods) == 3, strconv.Itoa(len(pods)) + " pods"
		})
		for i := range pods {
			assertInjected(t, &pods[i])
		}
	})

	t.Run("bare pods are injected", func(t *testing.T) {
		for range 2 {
			p := pod("", nil, nil)
			p.GenerateName = "orders-"
			got, err := client.CoreV1().Pods(nsMesh).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertInjected(t, got)
		}
	})

	t.Run("unlabelled namespace untouched", func(t *testing.T) {
		got, err := client.CoreV1().Pods(nsPlain).Create(ctx, pod("plain-1", nil, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertNotInjected(t, got)
	})

	t.Run("opted-out pod untouched", func(t *testing.T) {
		got, err := client.CoreV1().Pods(nsMesh).Create(ctx, pod("batch-1", map[string]string{mesh.LabelInject: mesh.InjectDisabled}, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertNotInjected(t, got)
		// The objectSelector keeps the API server from even calling us.
		logs, err := os.ReadFile(injector.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(logs), `"batch-1"`) {
			t.Errorf("the injector was called for the opted-out pod:\n%s", logs)
		}
	})

	t.Run("bad annotation refused with the injector's message", func(t *testing.T) {
		_, err := client.CoreV1().Pods(nsMesh).Create(ctx, pod("bad-1", nil, map[string]string{mesh.AnnotationExcludeOutboundCIDRs: "nope"}), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `annotation weft.dev/exclude-outbound-cidrs: "nope" is not a CIDR`) {
			t.Fatalf("err = %v, want the injector's denial", err)
		}
	})

	t.Run("re-creating an injected pod is a no-op", func(t *testing.T) {
		first, err := client.CoreV1().Pods(nsMesh).Create(ctx, pod("again-1", nil, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, first)
		// The pure function agrees: nothing to do.
		res, err := inject.Pod(first, meshconfig.Config{}, inject.DefaultTemplate())
		if err != nil || res.Injected || string(res.Patch) != "[]" {
			t.Fatalf("inject.Pod on a stored pod: injected=%v patch=%s err=%v", res.Injected, res.Patch, err)
		}
		second := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "again-2", Labels: first.Labels, Annotations: first.Annotations},
			Spec:       *first.Spec.DeepCopy(),
		}
		got, err := client.CoreV1().Pods(nsMesh).Create(ctx, second, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		assertInjected(t, got)
		for _, d := range []struct {
			name      string
			want, got any
		}{
			{"initContainers", first.Spec.InitContainers, got.Spec.InitContainers},
			{"containers", first.Spec.Containers, got.Spec.Containers},
			{"volumes", first.Spec.Volumes, got.Spec.Volumes},
			{"annotations", first.Annotations, got.Annotations},
		} {
			if diff := cmp.Diff(d.want, d.got); diff != "" {
				t.Errorf("%s changed on re-create (-first +second):\n%s", d.name, diff)
			}
		}
	})

	// kubectl apply twice: the second apply is "unchanged" and touches
	// nothing, for a Deployment (whose pods the webhook rewrote: probes
	// included) and for bare pods. A bare pod whose HTTP probes were
	// rewritten cannot be re-applied with client-side apply (the three-way
	// patch puts the user's probe back, and pod specs are immutable), so a
	// bare pod that is re-applied opts out of probe rewriting with
	// weft.dev/rewrite-app-probes: "false"; see the injector's doc.
	t.Run("kubectl apply twice is a no-op", func(t *testing.T) {
		kubectl := filepath.Join(c.BinDir, kubeharness.BinKubectl)
		if _, err := os.Stat(kubectl); err != nil {
			if os.Getenv(kubeharness.EnvRequire) != "" {
				t.Fatalf("kubectl: %v", err)
			}
			t.Skipf("kubectl: %v", err)
		}
		probe := `readinessProbe: {httpGet: {path: /ready, port: http}}`
		manifest := filepath.Join(t.TempDir(), "app.yaml")
		if err := os.WriteFile(manifest, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: `+nsMesh+`}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: app
        image: example.invalid/api:1
        ports: [{name: http, containerPort: 8080}]
        `+probe+`
---
apiVersion: v1
kind: Pod
metadata:
  name: applied
  namespace: `+nsMesh+`
  labels: {app: applied}
  annotations: {weft.dev/rewrite-app-probes: "false"}
spec:
  containers:
  - name: app
    image: example.invalid/app:1
    ports: [{name: http, containerPort: 8080}]
    `+probe+`
---
apiVersion: v1
kind: Pod
metadata: {name: applied-noprobe, namespace: `+nsMesh+`}
spec:
  containers: [{name: app, image: example.invalid/app:1}]
`), 0o600); err != nil {
			t.Fatal(err)
		}
		apply := func() string {
			out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig, "apply", "-f", manifest).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply: %v: %s", err, out)
			}
			return strings.TrimSpace(string(out))
		}
		if out := apply(); strings.Count(out, "created") != 3 {
			t.Fatalf("first apply: %q", out)
		}
		// state is every object's resourceVersion, by kind/name.
		state := func() map[string]string {
			m := map[string]string{}
			d, err := client.AppsV1().Deployments(nsMesh).Get(ctx, "api", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m["deployment/api"] = d.ResourceVersion
			l, err := client.CoreV1().Pods(nsMesh).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range l.Items {
				if p.Labels["app"] == "api" || strings.HasPrefix(p.Name, "applied") {
					m["pod/"+p.Name] = p.ResourceVersion
				}
			}
			return m
		}
		kubeharness.WaitFor(ctx, t, "2 api pods", func() (bool, string) {
			l, err := client.CoreV1().Pods(nsMesh).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
			if err != nil {
				return false, err.Error()
			}
			return len(l.Items) == 2, strconv.Itoa(len(l.Items)) + " pods"
		})
		l, err := client.CoreV1().Pods(nsMesh).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range l.Items {
			p := &l.Items[i]
			assertInjected(t, p)
			if got := p.Spec.Containers[0].ReadinessProbe.HTTPGet; got.Path != mesh.AppProbePath("app", "readyz") || got.Port.IntValue() != mesh.PortHealth {
				t.Errorf("pod %s: readiness probe not rewritten: %+v", p.Name, got)
			}
		}
		for _, name := range []string{"applied", "applied-noprobe"} {
			p, err := client.CoreV1().Pods(nsMesh).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertInjected(t, p)
		}
		// Let the controllers settle (ReplicaSet status, Deployment
		// status) before taking the picture.
		before := state()
		kubeharness.WaitFor(ctx, t, "objects settled", func() (bool, string) {
			time.Sleep(500 * time.Millisecond)
			now := state()
			same := cmp.Equal(before, now)
			before = now
			return same, "still changing"
		})
		if out := apply(); strings.Count(out, "unchanged") != 3 {
			t.Errorf("second apply: %q, want 3 unchanged", out)
		}
		if diff := cmp.Diff(before, state()); diff != "" {
			t.Errorf("second apply changed objects (-before +after):\n%s", diff)
		}
	})

	t.Run("webhook down", func(t *testing.T) {
		injector.Stop(10 * time.Second)
		// Unlabelled namespaces never call the webhook: still created.
		got, err := client.CoreV1().Pods(nsPlain).Create(ctx, pod("plain-2", nil, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("unlabelled namespace with the webhook down: %v", err)
		}
		assertNotInjected(t, got)
		// Labelled namespaces fail closed (failurePolicy Fail): no pod
		// without its sidecar.
		_, err = client.CoreV1().Pods(nsMesh).Create(ctx, pod("orphan-1", nil, nil), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), webhookName) {
			t.Fatalf("labelled namespace with the webhook down: err = %v, want a failed call to %s", err, webhookName)
		}
	})
}

func registerWebhook(ctx context.Context, t *testing.T, c *kubeharness.Cluster, url string) {
	t.Helper()
	if err := c.RegisterInjector(ctx, "weft-injector", webhookName, url); err != nil {
		t.Fatal(err)
	}
}

// pod is a minimal app pod with an HTTP readiness probe.
func pod(name string, lbls, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example.invalid/app:1",
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
		}}},
	}
}

func isInjected(p *corev1.Pod) bool {
	_, ok := p.Annotations[mesh.AnnotationInjected]
	return ok
}

func count(p *corev1.Pod, name string) int {
	n := 0
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				n++
			}
		}
	}
	return n
}

// assertInjected checks the pod as the API server stored it: init step
// first, then the native sidecar, once each; the volumes, the downward-API
// environment and the record.
func assertInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if !isInjected(p) {
		t.Fatalf("pod %s: no %s annotation: %v", p.Name, mesh.AnnotationInjected, p.Annotations)
	}
	var rec inject.Record
	if err := json.Unmarshal([]byte(p.Annotations[mesh.AnnotationInjected]), &rec); err != nil || !rec.Native || rec.Version != inject.RecordVersion {
		t.Errorf("pod %s: record %q: %v", p.Name, p.Annotations[mesh.AnnotationInjected], err)
	}
	if count(p, mesh.ContainerSidecar) != 1 || count(p, mesh.ContainerInit) != 1 {
		t.Fatalf("pod %s: want one %s and one %s, got init %v containers %v", p.Name, mesh.ContainerInit, mesh.ContainerSidecar, names(p.Spec.InitContainers), names(p.Spec.Containers))
	}
	ic := p.Spec.InitContainers
	if len(ic) < 2 || ic[0].Name != mesh.ContainerInit || ic[1].Name != mesh.ContainerSidecar {
		t.Fatalf("pod %s: init containers %v, want [%s %s ...]", p.Name, names(ic), mesh.ContainerInit, mesh.ContainerSidecar)
	}
	proxy := ic[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways || proxy.StartupProbe == nil {
		t.Errorf("pod %s: proxy is not a native sidecar with a startup probe", p.Name)
	}
	if proxy.Image != proxyImage || proxy.SecurityContext == nil || proxy.SecurityContext.RunAsUser == nil || *proxy.SecurityContext.RunAsUser != mesh.ProxyUID {
		t.Errorf("pod %s: proxy image %q / user wrong", p.Name, proxy.Image)
	}
	caps := ic[0].SecurityContext.Capabilities
	if caps == nil || len(caps.Add) != 2 {
		t.Errorf("pod %s: init step capabilities %+v", p.Name, caps)
	}
	var haveToken, haveBundle bool
	for _, v := range p.Spec.Volumes {
		switch v.Name {
		case mesh.VolumeToken:
			haveToken = v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken.Audience == mesh.TokenAudience
		case mesh.VolumeTrustBundle:
			haveBundle = v.ConfigMap != nil
		}
	}
	if !haveToken || !haveBundle {
		t.Errorf("pod %s: token volume %v, trust bundle volume %v", p.Name, haveToken, haveBundle)
	}
	env := map[string]string{}
	for _, e := range proxy.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	want := map[string]string{mesh.EnvWorkload: "metadata.name", mesh.EnvNamespace: "metadata.namespace", mesh.EnvServiceAccount: "spec.serviceAccountName", mesh.EnvPodIP: "status.podIP"}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("pod %s: downward-API env (-want +got):\n%s", p.Name, diff)
	}
}

func assertNotInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if isInjected(p) || count(p, mesh.ContainerSidecar) != 0 || count(p, mesh.ContainerInit) != 0 {
		t.Fatalf("pod %s/%s was injected: init %v containers %v", p.Namespace, p.Name, names(p.Spec.InitContainers), names(p.Spec.Containers))
	}
}

func names(cs []corev1.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
