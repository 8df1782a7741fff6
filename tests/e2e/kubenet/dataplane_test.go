package kubenet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/registry/kube"
	"github.com/weftmesh/weft/examples/shop/app"
	"github.com/weftmesh/weft/tests/kubeharness"
	"github.com/weftmesh/weft/tests/podharness"
)

// moveBound is how fast traffic must follow a pod's Ready change.
const moveBound = time.Second

func TestKubeDataPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	e := startEnv(ctx, t)
	client := e.c.Client
	payIP := e.cluster["payment"].String()

	// order calls payment by its short name and by its ClusterIP; the
	// client pod's app (api-gateway) calls order by its FQDN.
	e.deploy(ctx, "payment", 1, appSpec("payment", app.RolePayment))
	e.deploy(ctx, "order", 1, appSpec("order", app.RoleOrder,
		"--payment-url=http://payment:8080"+app.PathPay,
		"--inventory-url=http://"+net.JoinHostPort(payIP, strconv.Itoa(appPort))+"/"))
	// The client pod also opts into DNS capture (its sidecar's DNS proxy).
	clientPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "client", Labels: map[string]string{"app": "client"},
			Annotations: map[string]string{mesh.AnnotationDNSCapture: "true"},
		},
		Spec: appSpec("client", app.RoleAPIGateway),
	}
	_, err := client.CoreV1().Pods(shopNS).Create(ctx, clientPod, metav1.CreateOptions{})
	must(t, err)
	start := time.Now()
	paySel := labels.SelectorFromSet(labels.Set{"app": "payment"})
	for _, w := range []struct {
		sel labels.Selector
		n   int
	}{{paySel, 1}, {labels.SelectorFromSet(labels.Set{"app": "order"}), 1}, {labels.SelectorFromSet(labels.Set{"app": "client"}), 1}} {
		if _, err := e.kubelet.WaitReady(ctx, shopNS, w.sel, w.n); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("3 pods (Deployments through the webhook, injected, init rules, sidecar, app, probes) ready in %s", time.Since(start).Round(time.Millisecond))
	cp, _ := e.kubelet.Pod(shopNS, "client")
	c := e.client(cp.NS)

	t.Run("apps call each other by Service name and ClusterIP", func(t *testing.T) {
		// The test in the client pod calls its own app, which calls order
		// by FQDN, which calls payment by short name and by ClusterIP.
		url := "http://127.0.0.1:" + strconv.Itoa(appPort) + app.PathCheckout
		r := waitOK(ctx, t, c, url, func(r app.Reply) error { return callsOK(r, 1) })
		order := r.Calls[0].Reply
		if order == nil || order.Service != app.RoleOrder || len(order.Calls) != 2 {
			t.Fatalf("checkout -> order: %+v", r.Calls[0])
		}
		if err := callsOK(*order, 2); err != nil {
			t.Fatalf("order -> payment (name, ClusterIP): %v", err)
		}
		// And the test as an app: every name form and the ClusterIP.
		for _, host := range []string{"payment", "payment.shop", "payment.shop.svc", "payment.shop.svc.cluster.local", payIP} {
			url := "http://" + net.JoinHostPort(host, strconv.Itoa(appPort)) + app.PathPay
			if _, r, _, err := get(ctx, c, url); err != nil || r.Service != app.RolePayment {
				t.Errorf("client -> %s: %+v %v", url, r, err)
			}
		}
	})

	t.Run("the DNS proxy answers Service names with their ClusterIPs", func(t *testing.T) {
		// The test as an app in the client pod asks any resolver address
		// on port 53: the injected init step redirects it to the sidecar's
		// DNS proxy, whose names come over xDS from the kube registry
		// (ClusterIPs allocated by the API server). UDP, then TCP.
		for _, network := range []string{"udp", "tcp"} {
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return cp.NS.Dial(ctx, network, "192.0.2.53:53")
			}}
			for _, name := range []string{"payment", "payment.shop", "payment.shop.svc", "payment.shop.svc.cluster.local", "order.shop"} {
				svc, _, _ := strings.Cut(name, ".")
				got, err := r.LookupNetIP(ctx, "ip4", name+".")
				if err != nil || len(got) != 1 || got[0] != e.cluster[svc] {
					t.Errorf("%s %s: %v %v, want %s", network, name, got, err, e.cluster[svc])
				}
			}
		}
	})

	t.Run("a peer pod IP goes through the sidecar", func(t *testing.T) {
		pay := e.kubelet.Pods(shopNS, paySel)
		if len(pay) != 1 {
			t.Fatalf("payment pods: %v", pay)
		}
		url := "http://" + net.JoinHostPort(pay[0].IP.String(), strconv.Itoa(appPort)) + app.PathPay
		// From the Node (no sidecar), the pod's captured inbound refuses
		// plaintext (STRICT mTLS): the app never sees it.
		hub := e.client(e.net.Hub)
		if code, _, body, _ := get(ctx, hub, url); code != http.StatusForbidden || !strings.Contains(body, "mTLS only") {
			t.Fatalf("plaintext from the Node: %d %q; want 403 mTLS only", code, body)
		}
		// From the client pod the same address works: its sidecar caught
		// the connection and sent it over mTLS.
		if _, r, _, err := get(ctx, c, url); err != nil || r.Instance != pay[0].Name {
			t.Fatalf("client -> %s: %+v %v", url, r, err)
		}
	})

	t.Run("scale up, delete under load, scale down", func(t *testing.T) {
		l := startLoad(ctx, c, "http://payment:8080"+app.PathPay, 2, 100)
		defer l.stop()
		before := e.kubelet.Pods(shopNS, paySel)
		l.waitServed(ctx, t, before[0].Name)

		// Up: 1 -> 2.
		e.scale(ctx, "payment", 2)
		pods, err := e.kubelet.WaitReady(ctx, shopNS, paySel, 2)
		must(t, err)
		added := newPod(before, pods)
		first := l.waitServed(ctx, t, added.Name)
		up := first.Sub(added.ReadyAt)
		t.Logf("scale up: %s served %s after it was Ready", added.Name, up.Round(time.Millisecond))
		if up > moveBound {
			t.Errorf("scale up: traffic reached the new pod %s after Ready; want within %s", up, moveBound)
		}

		// Delete one pod under load: it drains, the ReplicaSet replaces it.
		victim := pods[0]
		must(t, client.CoreV1().Pods(shopNS).Delete(ctx, victim.Name, metav1.DeleteOptions{}))
		must(t, e.kubelet.WaitGone(ctx, victim.UID))
		gone := l.lastServed(victim.Name)
		t.Logf("delete: %s served its last request %s after it was marked not ready", victim.Name, gone.Sub(e.unreadyAt(victim)).Round(time.Millisecond))
		pods, err = e.kubelet.WaitReady(ctx, shopNS, paySel, 2)
		must(t, err)
		for _, p := range pods {
			l.waitServed(ctx, t, p.Name) // both serve before one goes
		}
		if f, first := l.failures(); f != 0 {
			t.Fatalf("delete under load: %d failed requests (first: %v)", f, first)
		}

		// Again without the drain wait: the kubelet stops the app at once
		// while the peers still route to the pod (the endpoint change is on
		// its way). Its sidecar answers "app unreachable" and the caller's
		// sidecar retries on the other endpoint.
		e.noDrain.Store(true)
		victim = pods[0]
		must(t, client.CoreV1().Pods(shopNS).Delete(ctx, victim.Name, metav1.DeleteOptions{}))
		must(t, e.kubelet.WaitGone(ctx, victim.UID))
		e.noDrain.Store(false)
		pods, err = e.kubelet.WaitReady(ctx, shopNS, paySel, 2)
		must(t, err)
		for _, p := range pods {
			l.waitServed(ctx, t, p.Name)
		}
		if f, first := l.failures(); f != 0 {
			t.Fatalf("delete under load without a drain wait: %d failed requests (first: %v)", f, first)
		}

		// Down: 2 -> 1.
		e.scale(ctx, "payment", 1)
		left, err := e.kubelet.WaitReady(ctx, shopNS, paySel, 1)
		must(t, err)
		removed := newPod(left, pods)
		unready := e.unreadyAt(removed)
		last := l.lastServed(removed.Name)
		if last.IsZero() {
			t.Fatalf("scale down: %s never served", removed.Name)
		}
		down := last.Sub(unready)
		t.Logf("scale down: %s served its last request %s after it was marked not ready", removed.Name, down.Round(time.Millisecond))
		if down > moveBound {
			t.Errorf("scale down: %s still served %s after not ready; want within %s", removed.Name, down, moveBound)
		}
		l.waitServed(ctx, t, left[0].Name)
		l.stop()
		ok, _ := l.counts()
		f, firstErr := l.failures()
		t.Logf("load: %d requests, %d failed", ok, f)
		if f != 0 {
			t.Errorf("%d failed requests (first: %v)", f, firstErr)
		}
		if err := e.kubelet.Errors(); err != nil {
			t.Errorf("kubelet: %v", err)
		}
	})

	t.Run("policy applies to a captured pod IP", func(t *testing.T) {
		pay := e.kubelet.Pods(shopNS, paySel)
		podURL := "http://" + net.JoinHostPort(pay[0].IP.String(), strconv.Itoa(appPort)) + app.PathPay
		svcURL := "http://" + net.JoinHostPort(payIP, strconv.Itoa(appPort)) + app.PathPay
		if _, _, _, err := get(ctx, c, podURL); err != nil {
			t.Fatalf("before the policy: %v", err)
		}
		// Only order may call payment.
		policy := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "weft.dev/v1alpha1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": "payment-callers", "namespace": shopNS},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "payment"}},
				"action":   "ALLOW",
				"rules":    []any{map[string]any{"from": []any{map[string]any{"serviceAccounts": []any{"order"}}}}},
			},
		}}
		_, err := e.c.Dynamic.Resource(kube.GVRAuthorizationPolicy).Namespace(shopNS).Create(ctx, policy, metav1.CreateOptions{})
		must(t, err)
		for _, url := range []string{podURL, svcURL, "http://payment:8080" + app.PathPay} {
			kubeharness.WaitFor(ctx, t, "client -> "+url+" refused", func() (bool, string) {
				code, _, body, err := get(ctx, c, url)
				return code == http.StatusForbidden && strings.Contains(body, "RBAC"), fmt.Sprintf("%d %q %v", code, body, err)
			})
		}
		// order (allowed) still reaches payment both ways.
		r := waitOK(ctx, t, c, "http://127.0.0.1:"+strconv.Itoa(appPort)+app.PathCheckout, func(r app.Reply) error { return callsOK(r, 1) })
		if err := callsOK(*r.Calls[0].Reply, 2); err != nil {
			t.Errorf("order -> payment under the policy: %v", err)
		}
	})

	t.Run("NetworkPolicy applies to a captured pod IP", func(t *testing.T) {
		order := e.kubelet.Pods(shopNS, labels.SelectorFromSet(labels.Set{"app": "order"}))
		podURL := "http://" + net.JoinHostPort(order[0].IP.String(), strconv.Itoa(appPort)) + app.PathOrder
		nameURL := "http://order.shop:8080" + app.PathOrder
		for _, url := range []string{podURL, nameURL} {
			waitOK(ctx, t, c, url, nil)
		}
		// Ingress to order only from payment pods: the client is not one.
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "order-ingress"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "order"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "payment"}},
				}}}},
			},
		}
		_, err := client.NetworkingV1().NetworkPolicies(shopNS).Create(ctx, np, metav1.CreateOptions{})
		must(t, err)
		for _, url := range []string{podURL, nameURL} {
			kubeharness.WaitFor(ctx, t, "client -> "+url+" refused", func() (bool, string) {
				code, _, body, err := get(ctx, c, url)
				return code == http.StatusForbidden, fmt.Sprintf("%d %q %v", code, body, err)
			})
		}
		must(t, client.NetworkingV1().NetworkPolicies(shopNS).Delete(ctx, np.Name, metav1.DeleteOptions{}))
		waitOK(ctx, t, c, podURL, nil)
	})
}

// callsOK checks that r made n calls, each answered 200 with a reply.
func callsOK(r app.Reply, n int) error {
	if len(r.Calls) != n {
		return fmt.Errorf("%s made %d calls, want %d", r.Instance, len(r.Calls), n)
	}
	for _, c := range r.Calls {
		if c.Status != http.StatusOK || c.Reply == nil {
			return fmt.Errorf("%s -> %s: status %d error %q", r.Instance, c.URL, c.Status, c.Error)
		}
		if err := callsOK(*c.Reply, len(c.Reply.Calls)); err != nil {
			return err
		}
	}
	return nil
}

// newPod is the pod in b that is not in a.
func newPod(a, b []podharness.Pod) podharness.Pod {
	for _, p := range b {
		if !slices.ContainsFunc(a, func(q podharness.Pod) bool { return q.UID == p.UID }) {
			return p
		}
	}
	return podharness.Pod{}
}

// unreadyAt is when the kubelet marked the (now gone) pod not ready.
func (e *env) unreadyAt(p podharness.Pod) time.Time {
	if at, ok := e.kubelet.UnreadyAt(p.UID); ok {
		return at
	}
	e.t.Fatalf("no not-ready time for %s", p.Name)
	return time.Time{}
}

// load sends GETs from a few workers at a bounded rate and records who
// served each.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	ok     int
	failed int
	first  error
	served map[string][]time.Time // instance -> completion times
}

// startLoad runs workers that together send at most rate requests/s.
func startLoad(ctx context.Context, c *http.Client, url string, workers, rate int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, served: map[string][]time.Time{}}
	every := time.Duration(workers) * time.Second / time.Duration(rate)
	for range workers {
		l.wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_, r, _, err := get(ctx, c, url)
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				if err != nil {
					l.failed++
					if l.first == nil {
						l.first = fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err)
					}
				} else {
					l.ok++
					l.served[r.Instance] = append(l.served[r.Instance], time.Now())
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) stop() { l.cancel(); l.wg.Wait() }

func (l *load) counts() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed
}

func (l *load) failures() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed, l.first
}

// waitServed waits for the first request instance served and returns when.
func (l *load) waitServed(ctx context.Context, t *testing.T, instance string) time.Time {
	t.Helper()
	var at time.Time
	kubeharness.WaitFor(ctx, t, "load reaches "+instance, func() (bool, string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if s := l.served[instance]; len(s) > 0 {
			at = s[0]
			return true, ""
		}
		return false, fmt.Sprintf("%d ok, %d failed", l.ok, l.failed)
	})
	return at
}

// lastServed is when instance last served a request.
func (l *load) lastServed(instance string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.served[instance]
	if len(s) == 0 {
		return time.Time{}
	}
	return s[len(s)-1]
}
