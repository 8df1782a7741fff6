package helm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/tests/kubeharness"
)

// binary returns a Weft binary: $WEFT_BIN_DIR/<name>, else built now.
func binary(t *testing.T, name, pkg string) string {
	t.Helper()
	if d := os.Getenv("WEFT_BIN_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	out := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %s", what, last)
		case <-tick.C:
		}
	}
}

type release struct {
	t       *testing.T
	c       *kubeharness.Cluster
	h       *helmRunner
	chart   string
	addr    string // injector listen address (127.x:port)
	ip      net.IP
	injBin  string
	injProc *kubeharness.Process
	cpProc  *kubeharness.Process
}

func (r *release) values(extra ...string) []string {
	args := []string{"-n", releaseNS, "--set", "webhook.url=https://" + r.addr + mesh.InjectorPath, "--set", "webhook.certIPs={" + r.ip.String() + "}"}
	for _, e := range extra {
		args = append(args, "--set", e)
	}
	return args
}

func (r *release) manifest(ctx context.Context) []*unstructured.Unstructured {
	out, _, err := r.h.run(ctx, "get", "manifest", "weft", "-n", releaseNS)
	if err != nil {
		r.t.Fatal(err)
	}
	return decodeObjects(r.t, out)
}

// startInjector runs weft-injector with exactly the args of the rendered
// container, mapping --listen to the test's address and the mounted Secret
// to files read from the cluster.
func (r *release) startInjector(ctx context.Context, objs []*unstructured.Unstructured) []string {
	t := r.t
	d := toTyped[appsv1.Deployment](t, find(objs, "Deployment", mesh.ControlPlaneDeployment))
	var ctr corev1.Container
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "weft-injector" {
			ctr = c
		}
	}
	mounts := r.secretMounts(ctx, d, ctr)
	var args []string
	for _, a := range ctr.Args {
		if strings.HasPrefix(a, "--listen=") {
			a = "--listen=" + r.addr
		}
		for mp, local := range mounts {
			a = strings.Replace(a, "="+mp, "="+local, 1)
		}
		args = append(args, a)
	}
	if r.injProc != nil {
		r.injProc.Stop(5 * time.Second)
	}
	r.injProc = r.c.StartProcess(t, mesh.BinaryInjector+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), r.injBin, args...)
	s, err := r.c.Client.CoreV1().Secrets(releaseNS).Get(ctx, mesh.WebhookTLSSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.Data["ca.crt"])
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	if err := r.injProc.WaitReady(ctx, hc, "https://"+r.addr+"/healthz", func(code int, _ []byte) bool { return code == 200 }); err != nil {
		t.Fatalf("injector with the rendered args %q (verified with the chart's CA): %v", args, err)
	}
	return args
}

// secretMounts writes the Secret volumes that ctr mounts, as the kubelet
// would (the Secret's items, or every key), under a directory of the
// test's, and returns mount path -> local directory.
func (r *release) secretMounts(ctx context.Context, d *appsv1.Deployment, ctr corev1.Container) map[string]string {
	t := r.t
	root := t.TempDir()
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s, err := r.c.Client.CoreV1().Secrets(releaseNS).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("secret volume %s: %v", v.Name, err)
			}
			local := filepath.Join(root, m.MountPath)
			if err := os.MkdirAll(local, 0o700); err != nil {
				t.Fatal(err)
			}
			items := v.Secret.Items
			if len(items) == 0 {
				for k := range s.Data {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				if err := os.WriteFile(filepath.Join(local, it.Path), s.Data[it.Key], 0o600); err != nil {
					t.Fatal(err)
				}
			}
			mounts[m.MountPath] = local
		}
	}
	return mounts
}

// startControlPlane runs weft-control-plane with exactly the args of the
// rendered container: listen addresses mapped to a 127.x address of the
// test's, $(VAR) references expanded from the container's env as the kubelet
// would, plus --kubeconfig (in a pod it uses the in-cluster config) that
// impersonates the chart's ServiceAccount, so the chart's RBAC is what the
// control plane gets. It returns the debug address.
func (r *release) startControlPlane(ctx context.Context, objs []*unstructured.Unstructured, bin string) (debugAddr string, args []string) {
	debugAddr, _, args = r.startControlPlaneXDS(ctx, objs, bin)
	return debugAddr, args
}

// startControlPlaneXDS is startControlPlane that also returns the xDS
// address.
func (r *release) startControlPlaneXDS(ctx context.Context, objs []*unstructured.Unstructured, bin string) (debugAddr, xdsAddr string, args []string) {
	t := r.t
	d := toTyped[appsv1.Deployment](t, find(objs, "Deployment", mesh.ControlPlaneDeployment))
	var ctr corev1.Container
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "weft-control-plane" {
			ctr = c
		}
	}
	ip := kubeharness.RandomLoopback()
	port := func() string {
		p, err := kubeharness.FreePort(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		return net.JoinHostPort(ip.String(), strconv.Itoa(p))
	}
	xdsAddr, debugAddr = port(), port()
	podName := d.Name + "-e2e-0"
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = releaseNS
		default:
			env[e.Name] = e.Value
		}
	}
	// /tmp is an emptyDir (the process has its own); Secret volumes are
	// written out and their paths in the args mapped.
	mounts := r.secretMounts(ctx, d, ctr)
	for _, m := range ctr.VolumeMounts {
		if _, ok := mounts[m.MountPath]; !ok && m.MountPath != "/tmp" {
			t.Fatalf("control plane mounts %s at %s: this test maps /tmp and Secrets only", m.Name, m.MountPath)
		}
	}
	for _, a := range ctr.Args {
		switch {
		case strings.HasPrefix(a, "--xds-address="):
			a = "--xds-address=" + xdsAddr
		case strings.HasPrefix(a, "--debug-address="):
			a = "--debug-address=" + debugAddr
		}
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		for mp, local := range mounts {
			a = strings.Replace(a, "="+mp+"/", "="+local+"/", 1)
		}
		args = append(args, a)
	}
	// Impersonate system:serviceaccount:<ns>:<sa> with the admin credentials.
	kc, err := clientcmd.LoadFromFile(r.c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range kc.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + releaseNS + ":" + d.Spec.Template.Spec.ServiceAccountName
	}
	kcPath := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--kubeconfig="+kcPath)
	p := r.c.StartProcess(t, mesh.BinaryControlPlane, bin, args...)
	hc := &http.Client{Timeout: 2 * time.Second}
	if err := p.WaitReady(ctx, hc, "http://"+debugAddr+"/healthz", func(code int, _ []byte) bool { return code == 200 }); err != nil {
		t.Fatalf("control plane with the rendered args %q: %v\n%s", args, err, p.Tail(30))
	}
	r.cpProc = p
	return debugAddr, xdsAddr, args
}

// checkCABundle: the webhook's caBundle is the Secret's CA.
func (r *release) checkCABundle(ctx context.Context) []byte {
	s, err := r.c.Client.CoreV1().Secrets(releaseNS).Get(ctx, mesh.WebhookTLSSecret, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	w, err := r.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	if len(w.Webhooks) != 1 || !bytes.Equal(w.Webhooks[0].ClientConfig.CABundle, s.Data["ca.crt"]) {
		r.t.Fatalf("caBundle does not match Secret %s ca.crt", mesh.WebhookTLSSecret)
	}
	return s.Data["ca.crt"]
}

func appPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example.invalid/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

func proxyOf(p *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == mesh.ContainerSidecar {
				return &cs[i]
			}
		}
	}
	return nil
}

// injects waits until a pod in ns comes back with a proxy of image.
func (r *release) injects(ctx context.Context, ns, name, image string) *corev1.Pod {
	var got *corev1.Pod
	waitFor(ctx, r.t, "webhook injects "+image, func() (bool, string) {
		p, err := r.c.Client.CoreV1().Pods(ns).Create(ctx, appPod(name), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		px := proxyOf(p)
		if px == nil || px.Image != image {
			return false, "not injected with " + image + " yet"
		}
		return true, ""
	})
	p, err := r.c.Client.CoreV1().Pods(ns).Create(ctx, appPod(name), metav1.CreateOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, ok := p.Annotations[mesh.AnnotationInjected]; !ok || proxyOf(p) == nil {
		r.t.Fatalf("pod %s/%s not injected", ns, name)
	}
	got = p
	return got
}

// strictDryRun server-side applies every object with strict field
// validation (unknown or duplicate fields are errors, not warnings).
func strictDryRun(ctx context.Context, t *testing.T, c *kubeharness.Cluster, objs []*unstructured.Unstructured) {
	t.Helper()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	force := true
	for _, o := range objs {
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		ri := c.Dynamic.Resource(m.Resource)
		var res interface {
			Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
		} = ri
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			res = ri.Namespace(o.GetNamespace())
		}
		if _, err := res.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
			DryRun: []string{metav1.DryRunAll}, FieldManager: "weft-e2e-strict", Force: &force, FieldValidation: "Strict",
		}); err != nil {
			t.Errorf("server-side strict validation of %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func TestInstallUpgradeUninstall(t *testing.T) {
	c := kubeharness.Start(t, kubeharness.WithoutCRDs())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	ip := kubeharness.RandomLoopback()
	port, err := kubeharness.FreePort(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	r := &release{
		t: t, c: c, h: newHelm(t, c.Kubeconfig), chart: chartDir(t), ip: ip,
		addr:   net.JoinHostPort(ip.String(), strconv.Itoa(port)),
		injBin: binary(t, mesh.BinaryInjector, "github.com/weftmesh/weft/injector/cmd/weft-injector"),
	}

	start := time.Now()
	out, _, err := r.h.run(ctx, append([]string{"install", "weft", r.chart, "--create-namespace"}, r.values()...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	objs := r.manifest(ctx)
	strictDryRun(ctx, t, c, objs)
	ca1 := r.checkCABundle(ctx)

	args := r.startInjector(ctx, objs)
	t.Logf("injector runs with the rendered args: %q", args)
	if err := c.CreateNamespace(ctx, "shop", map[string]string{mesh.LabelInject: mesh.InjectEnabled}); err != nil {
		t.Fatal(err)
	}
	p := r.injects(ctx, "shop", "web-1", "ghcr.io/weftmesh/weft-sidecar:0.1.0")

	cpBin := binary(t, mesh.BinaryControlPlane, "github.com/weftmesh/weft/control-plane/cmd/weft-control-plane")
	debugAddr, cpArgs := r.startControlPlane(ctx, objs, cpBin)
	t.Logf("control plane runs with the rendered args (as its ServiceAccount): %q", cpArgs)
	// What the leader writes with the chart's RBAC: the CA Secret, the
	// Lease, and the trust bundle in the enabled namespace.
	waitFor(ctx, t, "leader writes (CA Secret, Lease, weft-ca-root in shop)", func() (bool, string) {
		sec, err := c.Client.CoreV1().Secrets(releaseNS).Get(ctx, mesh.CASecretName, metav1.GetOptions{})
		if err != nil {
			return false, "secret: " + err.Error()
		}
		lease, err := c.Client.CoordinationV1().Leases(releaseNS).Get(ctx, mesh.LeaderLeaseName, metav1.GetOptions{})
		if err != nil {
			return false, "lease: " + err.Error()
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != mesh.ControlPlaneDeployment+"-e2e-0" {
			return false, "lease holder not the process"
		}
		cm, err := c.Client.CoreV1().ConfigMaps("shop").Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, "trust bundle: " + err.Error()
		}
		if cm.Data[mesh.TrustBundleKey] != string(sec.Data[mesh.CASecretBundleKey]) {
			return false, "trust bundle differs from the CA Secret's"
		}
		return true, ""
	})
	if logs, err := os.ReadFile(r.cpProc.LogPath()); err != nil {
		t.Fatal(err)
	} else if strings.Contains(string(logs), "forbidden") {
		t.Errorf("the control plane was refused something by the chart's RBAC:\n%s", r.cpProc.Tail(40))
	}
	if px := proxyOf(p); !strings.Contains(strings.Join(px.Args, " "), "weft-control-plane.weft-system.svc:15012") {
		t.Errorf("proxy args %q do not dial the chart's control plane Service", px.Args)
	}

	t.Run("weftctl check", func(t *testing.T) {
		r.t = t
		// A pod made before its namespace was enabled, and a policy that
		// isolates egress without DNS: both must be reported.
		if err := c.CreateNamespace(ctx, "late", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.CoreV1().Pods("late").Create(ctx, appPod("old-1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client.CoreV1().Namespaces().Patch(ctx, "late", types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"`+mesh.LabelInject+`":"`+mesh.InjectEnabled+`"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "no-dns", Namespace: "shop"},
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromInt32(8080))}}}},
			},
		}
		if _, err := c.Client.NetworkingV1().NetworkPolicies("shop").Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		//nolint:contextcheck // built once per test binary, bounded by go build
		weftctl := binary(t, mesh.BinaryCLI, "github.com/weftmesh/weft/control-plane/cmd/weftctl")
		cmd := exec.CommandContext(ctx, weftctl, "check", "--kubeconfig", c.Kubeconfig, "--control-plane", debugAddr)
		outb, err := cmd.CombinedOutput()
		out := string(outb)
		t.Logf("weftctl check:\n%s", out)
		// No kubelet runs the control plane's pods here, so that check
		// fails and the command must exit non-zero.
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit: %v, want 1 (the control plane has no ready replica)", err)
		}
		for _, want := range []string{
			"PASS  api-server       Kubernetes v1.",
			"PASS  crds             authorizationpolicies.weft.dev installed and current",
			"PASS  crds             workloadentries.weft.dev installed and current",
			"FAIL  control-plane    weft-system/weft-control-plane: 0/2 replicas ready",
			"PASS  webhook          " + r.addr + " reachable, certificate valid for the caBundle",
			"PASS  namespaces       injection enabled in late, shop",
			"WARN  pods             late: 1 pod(s) without a sidecar (created before the label? restart them): old-1",
			"PASS  pods             shop: all 1 pods have a sidecar",
			"WARN  netpol-dns       shop/no-dns isolates egress but allows no port 53",
			"PASS  proxies          0 proxies connected, all in sync",
			"PASS  certs            ",
			"check: 1 check(s) failed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("weftctl check output lacks %q", want)
			}
		}
		// A stale CRD is reported as not current.
		if _, err := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Patch(ctx,
			"trafficpolicies.weft.dev", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/versions/0/schema/openAPIV3Schema/description","value":"old"}]`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		outb, _ = exec.CommandContext(ctx, weftctl, "check", "--kubeconfig", c.Kubeconfig).CombinedOutput()
		if want := "FAIL  crds             trafficpolicies.weft.dev is not current (version v1alpha1 schema differs)"; !strings.Contains(string(outb), want) {
			t.Errorf("after editing a CRD, output lacks %q:\n%s", want, outb)
		}
	})

	t.Run("upgrade with changed values keeps injection working", func(t *testing.T) {
		r.t = t
		if _, _, err := r.h.run(ctx, append([]string{"upgrade", "weft", r.chart}, r.values(
			"proxy.image=example.invalid/weft-sidecar:v2", "logLevel=debug", "webhook.timeoutSeconds=5", "mesh.mtlsMode=PERMISSIVE",
			"proxy.dnsCapture=true")...)...); err != nil {
			t.Fatal(err)
		}
		if ca2 := r.checkCABundle(ctx); !bytes.Equal(ca1, ca2) {
			t.Errorf("upgrade made a new webhook CA although the SANs did not change")
		}
		objs = r.manifest(ctx)
		strictDryRun(ctx, t, c, objs)
		args := r.startInjector(ctx, objs) // what the rolled pods run
		if !strings.Contains(strings.Join(args, " "), "--proxy-image=example.invalid/weft-sidecar:v2") {
			t.Errorf("upgraded args %q", args)
		}
		p := r.injects(ctx, "shop", "web-2", "example.invalid/weft-sidecar:v2")
		// proxy.dnsCapture=true reached the injector: DNS capture in the
		// init step, the DNS proxy in the sidecar.
		var initArgs []string
		for _, c := range p.Spec.InitContainers {
			if c.Name == mesh.ContainerInit {
				initArgs = c.Args
			}
		}
		if !slices.Contains(initArgs, mesh.InitFlagCaptureDNS+"=true") || !slices.Contains(proxyOf(p).Args, mesh.SidecarFlagDNSProxy) {
			t.Errorf("after upgrade with proxy.dnsCapture=true: init args %q, proxy args %q", initArgs, proxyOf(p).Args)
		}
	})

	t.Run("uninstall leaves only the CRDs", func(t *testing.T) {
		r.t = t
		if _, _, err := r.h.run(ctx, "uninstall", "weft", "-n", releaseNS, "--wait", "--timeout", "60s"); err != nil {
			t.Fatal(err)
		}
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
		for _, o := range objs {
			m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
			if err != nil {
				t.Fatal(err)
			}
			ri := c.Dynamic.Resource(m.Resource)
			var getErr error
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				_, getErr = ri.Namespace(o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
			} else {
				_, getErr = ri.Get(ctx, o.GetName(), metav1.GetOptions{})
			}
			kept := o.GetKind() == "CustomResourceDefinition"
			switch {
			case kept && getErr != nil:
				t.Errorf("CRD %s was deleted; the chart documents it is kept: %v", o.GetName(), getErr)
			case !kept && !apierrors.IsNotFound(getErr):
				t.Errorf("%s %s/%s left behind after uninstall (err=%v)", o.GetKind(), o.GetNamespace(), o.GetName(), getErr)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
