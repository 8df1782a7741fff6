package podharness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/tests/netnsharness"
)

// Config is what a Kubelet runs pods with.
type Config struct {
	// Client talks to the API server (the test's admin client).
	Client kubernetes.Interface
	// Net is the pods' network (netnsharness.New).
	Net *netnsharness.Net
	// Node is the Node's name (default "node-1"); Start creates it.
	Node string
	// Images maps a container image to the binary it runs (its entrypoint),
	// an absolute path the container's uid can execute.
	Images map[string]string
	// Dir holds one directory per pod (volumes, container logs). Every
	// component of its path must be searchable by the containers' uids.
	Dir string
	// ClusterDomain of Service names (default cluster.local).
	ClusterDomain string
	// Drain is called when a pod is terminating, after it was marked not
	// ready and before its containers are stopped; its context ends with
	// the pod's grace period. Nil: no wait.
	Drain func(ctx context.Context, pod *corev1.Pod) error
	// StartTimeout bounds a pod's start, from its namespace to its last
	// startup probe (default 90 s).
	StartTimeout time.Duration
}

// Kubelet runs the pods bound to its Node.
type Kubelet struct {
	t      testing.TB
	cfg    Config
	client kubernetes.Interface
	pods   listersv1.PodLister
	svcs   listersv1.ServiceLister
	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	runs   map[types.UID]*podRun
	gone   map[types.UID]Pod // last view of the pods that stopped
	errs   []error           // container failures, reported when the test ends
	events []string
}

// Pod is a running pod as the Kubelet sees it.
type Pod struct {
	Namespace, Name string
	UID             types.UID
	// NS is the pod's network namespace (Dial from it to act as an app in
	// the pod, whose traffic the pod's sidecar captures).
	NS *netnsharness.NS
	IP netip.Addr
	// ReadyAt is when the Ready condition was last patched to true;
	// UnreadyAt when it was last patched to false after that (zero: not
	// yet).
	ReadyAt, UnreadyAt time.Time
	// Dir holds the pod's volumes and its container logs (<container>.log).
	Dir string
}

// Start registers the Node, starts watching pods and stops everything when
// the test ends.
func Start(t testing.TB, cfg Config) *Kubelet {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "node-1"
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 90 * time.Second
	}
	if cfg.Client == nil || cfg.Net == nil || cfg.Dir == "" {
		t.Fatal("podharness: Config needs Client, Net and Dir")
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{t: t, cfg: cfg, client: cfg.Client, wake: make(chan struct{}, 1), cancel: cancel, runs: map[types.UID]*podRun{}, gone: map[types.UID]Pod{}}
	t.Cleanup(k.stop)
	hub := cfg.Net.Hub.IP.String()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.Node, Labels: map[string]string{corev1.LabelHostname: cfg.Node}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: hub}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		},
	}
	created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("podharness: node: %v", err)
	}
	created.Status = node.Status
	if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("podharness: node status: %v", err)
	}

	factory := informers.NewSharedInformerFactory(k.client, 0)
	podInf := factory.Core().V1().Pods()
	svcInf := factory.Core().V1().Services()
	k.pods, k.svcs = podInf.Lister(), svcInf.Lister()
	notify := func() {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { notify() }, UpdateFunc: func(any, any) { notify() }, DeleteFunc: func(any) { notify() }}
	if _, err := podInf.Informer().AddEventHandler(h); err != nil {
		t.Fatal(err)
	}
	_ = svcInf.Informer() // registered before Start
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("podharness: cache of %v did not sync", typ)
		}
	}
	k.wg.Go(func() {
		defer factory.Shutdown()
		k.loop(ctx)
	})
	return k
}

func (k *Kubelet) stop() {
	k.cancel()
	k.wg.Wait()
	k.mu.Lock()
	errs := k.errs
	events := k.events
	k.mu.Unlock()
	for _, err := range errs {
		k.t.Errorf("podharness: %v", err)
	}
	if k.t.Failed() && len(events) > 0 {
		k.t.Logf("podharness: events:\n%s", joinLines(events))
	}
}

func joinLines(lines []string) string {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return string(b)
}

// event records what the Kubelet did (printed when the test fails).
func (k *Kubelet) event(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

func (k *Kubelet) fail(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.errs = append(k.errs, err)
	k.events = append(k.events, time.Now().Format("15:04:05.000 ")+"ERROR "+err.Error())
}

// loop reconciles on every pod event (bursts coalesce) and every second.
func (k *Kubelet) loop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		k.reconcile(ctx)
		select {
		case <-ctx.Done():
			k.mu.Lock()
			runs := make([]*podRun, 0, len(k.runs))
			for _, r := range k.runs {
				runs = append(runs, r)
			}
			k.mu.Unlock()
			for _, r := range runs {
				<-r.done // their contexts derive from ctx: they stop at once
			}
			return
		case <-k.wake:
		case <-tick.C:
		}
	}
}

func (k *Kubelet) reconcile(ctx context.Context) {
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	seen := map[types.UID]bool{}
	for _, pod := range pods {
		seen[pod.UID] = true
		switch {
		case pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil:
			if pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName {
				continue
			}
			k.bind(ctx, pod)
		case pod.Spec.NodeName != k.cfg.Node:
		default:
			k.mu.Lock()
			r, running := k.runs[pod.UID]
			k.mu.Unlock()
			switch {
			case running && pod.DeletionTimestamp != nil:
				r.terminate(pod)
			case running:
			case pod.DeletionTimestamp != nil:
				// Never started (or already finished): let it go.
				k.deletePod(ctx, pod)
			case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			default:
				k.startPod(ctx, pod)
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for uid, r := range k.runs {
		if !seen[uid] {
			r.kill() // deleted outright: no drain
		}
	}
}

func (k *Kubelet) bind(ctx context.Context, pod *corev1.Pod) {
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: k.cfg.Node},
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	switch {
	case err == nil:
		k.event("bound %s/%s to %s", pod.Namespace, pod.Name, k.cfg.Node)
	case apierrors.IsConflict(err), apierrors.IsNotFound(err), ctx.Err() != nil:
		// Bound meanwhile, or gone.
	default:
		k.event("bind %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func (k *Kubelet) deletePod(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		k.event("delete %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func (k *Kubelet) startPod(ctx context.Context, pod *corev1.Pod) {
	dir := filepath.Join(k.cfg.Dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)[:8])
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: read by the containers' uids.
		k.fail(fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err))
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	r := &podRun{
		k: k, pod: pod.DeepCopy(), dir: dir, cancel: cancel,
		term: make(chan struct{}), done: make(chan struct{}),
		procs: map[string]*container{}, completed: map[string]time.Time{},
	}
	k.mu.Lock()
	k.runs[pod.UID] = r
	k.mu.Unlock()
	k.event("start %s/%s", pod.Namespace, pod.Name)
	k.wg.Go(func() {
		defer close(r.done)
		defer cancel()
		r.run(pctx)
		last := r.snapshot()
		k.mu.Lock()
		k.gone[pod.UID] = last
		delete(k.runs, pod.UID)
		k.mu.Unlock()
	})
}

// Pod returns the running pod namespace/name.
func (k *Kubelet) Pod(namespace, name string) (Pod, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.runs {
		if r.pod.Namespace == namespace && r.pod.Name == name {
			return r.snapshot(), true
		}
	}
	return Pod{}, false
}

// Pods returns the running pods whose labels match sel, by name.
func (k *Kubelet) Pods(namespace string, sel labels.Selector) []Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Pod
	for _, r := range k.runs {
		if r.pod.Namespace == namespace && sel.Matches(labels.Set(r.pod.Labels)) {
			out = append(out, r.snapshot())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// WaitReady waits until n pods matching sel run and are ready (and no
// other matching pod runs), and returns them.
func (k *Kubelet) WaitReady(ctx context.Context, namespace string, sel labels.Selector, n int) ([]Pod, error) {
	for {
		pods := k.Pods(namespace, sel)
		ready := 0
		for _, p := range pods {
			if !p.ReadyAt.IsZero() && p.UnreadyAt.IsZero() {
				ready++
			}
		}
		if ready == n && len(pods) == n {
			return pods, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("podharness: %d ready pods %s in %s: %d running, %d ready: %w", n, sel, namespace, len(pods), ready, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitGone waits until the Kubelet no longer runs the pod with uid (its
// containers stopped, its namespace removed).
func (k *Kubelet) WaitGone(ctx context.Context, uid types.UID) error {
	for {
		k.mu.Lock()
		r, ok := k.runs[uid]
		k.mu.Unlock()
		if !ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("podharness: pod %s/%s still running: %w", r.pod.Namespace, r.pod.Name, ctx.Err())
		case <-r.done:
			return nil
		}
	}
}

// UnreadyAt is when the pod with uid, running or stopped, was last marked
// not ready.
func (k *Kubelet) UnreadyAt(uid types.UID) (time.Time, bool) {
	k.mu.Lock()
	r, ok := k.runs[uid]
	last, stopped := k.gone[uid]
	k.mu.Unlock()
	if ok {
		last = r.snapshot()
	} else if !stopped {
		return time.Time{}, false
	}
	return last.UnreadyAt, !last.UnreadyAt.IsZero()
}

// Errors returns the container failures seen so far.
func (k *Kubelet) Errors() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return errors.Join(k.errs...)
}
