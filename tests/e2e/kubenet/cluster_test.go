package kubenet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/examples/shop/app"
	"github.com/weftmesh/weft/tests/kubeharness"
	"github.com/weftmesh/weft/tests/netnsharness"
	"github.com/weftmesh/weft/tests/podharness"
)

const (
	shopNS       = "shop"
	appPort      = 8080
	sidecarImage = "weft.test/weft-sidecar:e2e"
	shopImage    = "weft.test/shop:e2e"
	webhookName  = "inject.weft.dev"
	edsType      = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// env is one test's cluster, mesh and kubelet.
type env struct {
	t       *testing.T
	c       *kubeharness.Cluster
	net     *netnsharness.Net
	kubelet *podharness.Kubelet
	debug   string // control plane debug base URL
	hc      *http.Client
	cluster map[string]netip.Addr // Service -> ClusterIP
	// noDrain makes the kubelet stop a deleted pod at once, as a real
	// kubelet does for a pod without a preStop hook.
	noDrain atomic.Bool
}

// startEnv brings up the cluster, the control plane, the injector and the
// kubelet, and the shop namespace with its ServiceAccounts and Services.
func startEnv(ctx context.Context, t *testing.T) *env {
	netnsharness.Require(t)
	// The harnesses' lifetimes are the test's (t.Cleanup), not ctx's.
	c := kubeharness.Start(t, kubeharness.WithControllerManager())                             //nolint:contextcheck // see above
	n := netnsharness.New(t, netnsharness.WithPrefix("wk"), netnsharness.WithSecondOctet(251)) //nolint:contextcheck // see above
	e := &env{t: t, c: c, net: n, hc: &http.Client{Timeout: 5 * time.Second}, cluster: map[string]netip.Addr{}}
	t.Cleanup(e.hc.CloseIdleConnections)
	must(t, c.CreateNamespace(ctx, mesh.ControlPlaneNamespace, nil))
	must(t, c.CreateNamespace(ctx, shopNS, map[string]string{mesh.LabelInject: mesh.InjectEnabled}))

	// The control plane next to the API server, on loopback; the pods
	// reach its xDS port through a forwarder on the bridge.
	ip := kubeharness.RandomLoopback()
	ports, err := kubeharness.FreePorts(ctx, ip, 2)
	must(t, err)
	xdsPort, dbgPort := ports[0], ports[1]
	xds := net.JoinHostPort(ip.String(), strconv.Itoa(xdsPort))
	e.debug = "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(dbgPort))
	cp := c.StartProcess(t, mesh.BinaryControlPlane, filepath.Join(binDir, mesh.BinaryControlPlane),
		"--registry=kube", "--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--xds-address="+xds, "--debug-address="+net.JoinHostPort(ip.String(), strconv.Itoa(dbgPort)),
		"--debounce=50ms", "--log-level=debug")
	must(t, cp.WaitReady(ctx, e.hc, e.debug+"/healthz", func(code int, _ []byte) bool { return code == http.StatusOK }))
	podXDS := net.JoinHostPort(n.Hub.IP.String(), strconv.Itoa(mesh.PortXDS))
	podharness.Forward(t, n.Hub, podXDS, xds) //nolint:contextcheck // lives until the test ends

	// The injector, told to point sidecars at that address.
	wip := kubeharness.RandomLoopback()
	wport, err := kubeharness.FreePort(ctx, wip)
	must(t, err)
	waddr := net.JoinHostPort(wip.String(), strconv.Itoa(wport))
	certPEM, keyPEM, err := c.CA.IssueServing("weft-injector", []net.IP{wip})
	must(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	must(t, os.WriteFile(certFile, certPEM, 0o600))
	must(t, os.WriteFile(keyFile, keyPEM, 0o600))
	injector := c.StartProcess(t, mesh.BinaryInjector, filepath.Join(binDir, mesh.BinaryInjector),
		"serve", "--listen="+waddr, "--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--proxy-image="+sidecarImage, "--xds-address="+podXDS, "--proxy-log-level=debug")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.CertPEM)
	whc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer whc.CloseIdleConnections()
	must(t, injector.WaitReady(ctx, whc, "https://"+waddr+"/healthz", func(code int, _ []byte) bool { return code == http.StatusOK }))
	must(t, c.RegisterInjector(ctx, "weft-injector", webhookName, "https://"+waddr+mesh.InjectorPath))
	kubeharness.WaitFor(ctx, t, "webhook active", func() (bool, string) {
		p, err := c.Client.CoreV1().Pods(shopNS).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "probe"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: shopImage}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		_, ok := p.Annotations[mesh.AnnotationInjected]
		return ok, "dry-run pod not injected yet"
	})

	// Not t.TempDir: its parent is 0700 and the proxy uid reads the volumes.
	pdir, err := os.MkdirTemp("", "weft-kubenet-pods-")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(pdir) })
	must(t, os.Chmod(pdir, 0o755))                     //nolint:gosec // G302: read by the proxy uid.
	e.kubelet = podharness.Start(t, podharness.Config{ //nolint:contextcheck // lives until the test ends
		Client: c.Client, Net: n, Dir: pdir,
		Images: map[string]string{
			sidecarImage: filepath.Join(imageDir, mesh.BinarySidecar),
			shopImage:    filepath.Join(imageDir, "shop"),
		},
		Drain: e.drain,
	})
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpPods(pdir)
		}
	})

	for _, sa := range []string{"client", "order", "payment"} {
		_, err := c.Client.CoreV1().ServiceAccounts(shopNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		must(t, err)
	}
	for _, name := range []string{"order", "payment"} {
		svc, err := c.Client.CoreV1().Services(shopNS).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": name},
				Ports:    []corev1.ServicePort{{Name: "http", Port: appPort, TargetPort: intstr.FromString("http")}},
			},
		}, metav1.CreateOptions{})
		must(t, err)
		e.cluster[name] = netip.MustParseAddr(svc.Spec.ClusterIP)
	}
	return e
}

// appSpec is a shop pod: the app as the image's entrypoint, its instance
// name from the downward API, a readiness probe the injector rewrites.
func appSpec(sa, role string, args ...string) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName: sa,
		Containers: []corev1.Container{{
			Name:  "app",
			Image: shopImage,
			Args:  append([]string{"--role=" + role, "--instance=$(POD_NAME)", "--listen=0.0.0.0:" + strconv.Itoa(appPort)}, args...),
			Env:   []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: appPort}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
				PeriodSeconds: 1, FailureThreshold: 1,
			},
		}},
	}
}

func (e *env) deploy(ctx context.Context, name string, replicas int32, spec corev1.PodSpec) {
	e.t.Helper()
	sel := map[string]string{"app": name}
	_, err := e.c.Client.AppsV1().Deployments(shopNS).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: spec},
		},
	}, metav1.CreateOptions{})
	must(e.t, err)
}

func (e *env) scale(ctx context.Context, name string, replicas int32) {
	e.t.Helper()
	s, err := e.c.Client.AppsV1().Deployments(shopNS).GetScale(ctx, name, metav1.GetOptions{})
	must(e.t, err)
	s.Spec.Replicas = replicas
	_, err = e.c.Client.AppsV1().Deployments(shopNS).UpdateScale(ctx, name, s, metav1.UpdateOptions{})
	must(e.t, err)
}

// drain is the kubelet's wait before it stops a terminating pod: the
// EndpointSlice no longer calls it ready, and every other connected proxy
// has acknowledged endpoints in which it is not HEALTHY.
func (e *env) drain(ctx context.Context, pod *corev1.Pod) error {
	if e.noDrain.Load() {
		return nil
	}
	ip := pod.Status.PodIP
	self := mesh.NodeID(pod.Name, pod.Namespace)
	var last string
	for {
		ok, why, err := e.drained(ctx, pod.Namespace, ip, self)
		if err == nil && ok {
			return nil
		}
		last = why
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not drained (last: %s): %w", last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *env) drained(ctx context.Context, ns, ip, self string) (bool, string, error) {
	slices, err := e.c.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, "", err
	}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 && ep.Addresses[0] == ip && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				return false, "EndpointSlice " + s.Name + " still has it ready", nil
			}
		}
	}
	var proxies []struct {
		ID       string                       `json:"id"`
		Versions map[string]map[string]string `json:"versions"`
	}
	if err := e.getJSON(ctx, e.debug+"/debug/proxies", &proxies); err != nil {
		return false, "", err
	}
	for _, p := range proxies {
		if p.ID == self {
			continue
		}
		v := p.Versions[edsType]
		if v["sent"] == "" || v["acked"] != v["sent"] {
			return false, p.ID + ": EDS not acknowledged", nil
		}
		var dump struct {
			Resources map[string]struct {
				Items []json.RawMessage `json:"items"`
			} `json:"resources"`
		}
		if err := e.getJSON(ctx, e.debug+"/debug/config_dump?proxy="+p.ID, &dump); err != nil {
			return false, "", err
		}
		for _, raw := range dump.Resources[edsType].Items {
			var cla struct {
				Endpoints []struct {
					LBEndpoints []struct {
						Endpoint struct {
							Address struct {
								SocketAddress struct {
									Address string `json:"address"`
								} `json:"socketAddress"`
							} `json:"address"`
						} `json:"endpoint"`
						HealthStatus string `json:"healthStatus"`
					} `json:"lbEndpoints"`
				} `json:"endpoints"`
			}
			if err := json.Unmarshal(raw, &cla); err != nil {
				return false, "", err
			}
			for _, l := range cla.Endpoints {
				for _, lb := range l.LBEndpoints {
					if lb.Endpoint.Address.SocketAddress.Address == ip && lb.HealthStatus != "UNHEALTHY" && lb.HealthStatus != "DRAINING" {
						return false, p.ID + " still has it " + cmpOr(lb.HealthStatus, "UNKNOWN"), nil
					}
				}
			}
		}
	}
	return true, "", nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (e *env) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

// client is an HTTP client whose connections start inside the pod: the
// test is one more app in it, captured by its sidecar. Names resolve
// through the pod's view of cluster DNS (the Kubelet's hosts file).
func (e *env) client(from *netnsharness.NS) *http.Client {
	hosts := map[string]string{}
	for svc, ip := range e.cluster {
		for _, n := range []string{svc, svc + "." + shopNS, svc + "." + shopNS + ".svc", svc + "." + shopNS + ".svc.cluster.local"} {
			hosts[n] = ip.String()
		}
	}
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				if ip, ok := hosts[host]; ok {
					addr = net.JoinHostPort(ip, port)
				}
				return from.Dial(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 8,
		},
	}
	e.t.Cleanup(c.CloseIdleConnections)
	return c
}

// get fetches url and decodes the shop's Reply (an error for any status
// but 200).
func get(ctx context.Context, c *http.Client, url string) (int, app.Reply, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, app.Reply{}, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, app.Reply{}, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, app.Reply{}, "", err
	}
	var r app.Reply
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, r, string(b), fmt.Errorf("%s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return resp.StatusCode, r, string(b), fmt.Errorf("%s: %w", url, err)
	}
	return resp.StatusCode, r, string(b), nil
}

// waitOK polls url from c until it answers 200 and check accepts the reply.
func waitOK(ctx context.Context, t *testing.T, c *http.Client, url string, check func(app.Reply) error) app.Reply {
	t.Helper()
	var r app.Reply
	kubeharness.WaitFor(ctx, t, url, func() (bool, string) {
		var err error
		_, r, _, err = get(ctx, c, url)
		if err == nil && check != nil {
			err = check(r)
		}
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return r
}

func (e *env) dumpPods(dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, l := range logs {
		e.t.Logf("--- %s\n%s", strings.TrimPrefix(l, dir+"/"), netnsharness.TailLog(l, 2500))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
