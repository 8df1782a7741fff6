package podharness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftmesh/weft/tests/netnsharness"
)

// podRun is one pod the Kubelet runs; run is its goroutine.
type podRun struct {
	k      *Kubelet
	pod    *corev1.Pod // as first seen; identity and spec never change
	dir    string
	cancel context.CancelFunc // kill: stop everything now

	termOnce sync.Once
	term     chan struct{} // closed: the pod is terminating (graceful)
	done     chan struct{} // closed when run returned

	mu        sync.Mutex // guards what follows (read by snapshot)
	ns        *netnsharness.NS
	ip        netip.Addr
	started   time.Time
	readyAt   time.Time
	unreadyAt time.Time
	deleting  *corev1.Pod           // the pod with its deletionTimestamp
	procs     map[string]*container // long-running containers (and native sidecars)
	completed map[string]time.Time  // init containers that ran to completion
}

// container is one running container process.
type container struct {
	spec      corev1.Container
	init      bool // an init container (restartable: a native sidecar)
	proc      *netnsharness.Proc
	ready     bool
	failures  int
	stopping  bool
	startedAt time.Time
}

func (r *podRun) snapshot() Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Pod{
		Namespace: r.pod.Namespace, Name: r.pod.Name, UID: r.pod.UID,
		NS: r.ns, IP: r.ip, ReadyAt: r.readyAt, UnreadyAt: r.unreadyAt, Dir: r.dir,
	}
}

func (r *podRun) terminate(pod *corev1.Pod) {
	r.termOnce.Do(func() {
		r.mu.Lock()
		r.deleting = pod.DeepCopy()
		r.mu.Unlock()
		close(r.term)
	})
}

func (r *podRun) kill() { r.cancel() }

func (r *podRun) name() string { return r.pod.Namespace + "/" + r.pod.Name }

// run starts the pod, probes it until it terminates, then stops it.
func (r *podRun) run(ctx context.Context) {
	defer r.teardown() //nolint:contextcheck // cleanup must run after ctx ends; its commands have their own bound
	if err := r.start(ctx); err != nil {
		if ctx.Err() == nil {
			r.k.fail(fmt.Errorf("pod %s: start: %w", r.name(), err))
			_ = r.patchStatus(ctx, corev1.PodFailed, false) // best effort: the failure is reported
		}
		return
	}
	r.probeLoop(ctx)
	select {
	case <-r.term:
		r.shutdown(ctx)
	default: // killed, or the test ended
	}
}

func (r *podRun) start(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, r.k.cfg.StartTimeout)
	defer cancel()
	ns, err := r.k.cfg.Net.CreatePod(r.pod.Name, r.hosts()) //nolint:contextcheck // netnsharness bounds its own commands
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.ns, r.ip, r.started = ns, ns.IP, time.Now()
	r.mu.Unlock()
	r.k.event("%s: netns %s, ip %s", r.name(), ns.Name, ns.IP)
	if err := r.patchStatus(sctx, corev1.PodPending, false); err != nil {
		return err
	}
	vols, err := r.makeVolumes(sctx)
	if err != nil {
		return err
	}
	for _, c := range r.pod.Spec.InitContainers {
		restartable := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if !restartable {
			if err := r.runToCompletion(sctx, c, vols); err != nil {
				return err
			}
			continue
		}
		if err := r.startContainer(c, true, vols); err != nil {
			return err
		}
		if err := r.waitStartup(sctx, c); err != nil {
			return err
		}
	}
	for _, c := range r.pod.Spec.Containers {
		if err := r.startContainer(c, false, vols); err != nil {
			return err
		}
	}
	for _, c := range r.pod.Spec.Containers {
		if err := r.waitStartup(sctx, c); err != nil {
			return err
		}
	}
	return r.patchStatus(sctx, corev1.PodRunning, false)
}

// hosts is the pod's /etc/hosts: every Service with a ClusterIP under the
// names cluster DNS answers.
func (r *podRun) hosts() map[string]netip.Addr {
	out := map[string]netip.Addr{}
	svcs, err := r.k.svcs.List(everything)
	if err != nil {
		return out
	}
	for _, s := range svcs {
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil {
			continue // headless or none
		}
		base := s.Name + "." + s.Namespace
		for _, n := range []string{base, base + ".svc", base + ".svc." + r.k.cfg.ClusterDomain} {
			out[n] = ip
		}
		if s.Namespace == r.pod.Namespace {
			out[s.Name] = ip
		}
	}
	return out
}

// probeLoop runs the readiness probes until the pod terminates or ctx ends.
func (r *podRun) probeLoop(ctx context.Context) {
	period := time.Second
	for _, c := range r.allContainers() {
		if p := c.ReadinessProbe; p != nil && p.PeriodSeconds > 0 && time.Duration(p.PeriodSeconds)*time.Second < period {
			period = time.Duration(p.PeriodSeconds) * time.Second
		}
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		r.probeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.term:
			return
		case <-tick.C:
		}
	}
}

func (r *podRun) allContainers() []corev1.Container {
	out := make([]corev1.Container, 0, len(r.pod.Spec.InitContainers)+len(r.pod.Spec.Containers))
	out = append(out, r.pod.Spec.InitContainers...)
	return append(out, r.pod.Spec.Containers...)
}

func (r *podRun) probeOnce(ctx context.Context) {
	r.mu.Lock()
	procs := make([]*container, 0, len(r.procs))
	for _, c := range r.procs {
		procs = append(procs, c)
	}
	r.mu.Unlock()
	for _, c := range procs {
		if c.proc.Exited() {
			r.mu.Lock()
			unexpected := !c.stopping
			c.ready, c.stopping = false, true
			r.mu.Unlock()
			if unexpected {
				r.k.fail(fmt.Errorf("pod %s: container %s exited while the pod runs; log:\n%s", r.name(), c.spec.Name, netnsharness.TailLog(c.proc.Log, 2000)))
			}
			continue
		}
		p := c.spec.ReadinessProbe
		ok := true
		if p != nil {
			err := r.probe(ctx, c.spec, p)
			ok = err == nil
		}
		r.mu.Lock()
		switch {
		case ok:
			c.ready, c.failures = true, 0
		default:
			c.failures++
			threshold := 3
			if p.FailureThreshold > 0 {
				threshold = int(p.FailureThreshold)
			}
			if c.failures >= threshold {
				c.ready = false
			}
		}
		r.mu.Unlock()
	}
	r.updateReady(ctx)
}

// updateReady patches Ready when it changed: every container (and every
// native sidecar) ready.
func (r *podRun) updateReady(ctx context.Context) {
	r.mu.Lock()
	ready := len(r.procs) > 0
	for _, c := range r.procs {
		if !c.ready {
			ready = false
		}
	}
	was := !r.readyAt.IsZero() && r.unreadyAt.IsZero()
	r.mu.Unlock()
	if ready == was {
		return
	}
	if err := r.patchStatus(ctx, corev1.PodRunning, ready); err != nil {
		r.k.event("%s: status: %v", r.name(), err)
		return
	}
	r.mu.Lock()
	if ready {
		r.readyAt, r.unreadyAt = time.Now(), time.Time{}
	} else {
		r.unreadyAt = time.Now()
	}
	r.mu.Unlock()
	r.k.event("%s: ready=%v", r.name(), ready)
}

// shutdown is the graceful path of a deleted pod.
func (r *podRun) shutdown(ctx context.Context) {
	r.mu.Lock()
	pod := r.deleting
	for _, c := range r.procs {
		c.ready = false
	}
	r.mu.Unlock()
	grace := 30 * time.Second
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	r.updateReady(gctx)
	if d := r.k.cfg.Drain; d != nil {
		start := time.Now()
		if err := d(gctx, pod); err != nil {
			r.k.event("%s: drain: %v (stopping anyway)", r.name(), err)
		} else {
			r.k.event("%s: drained in %s", r.name(), time.Since(start).Round(time.Millisecond))
		}
	}
	r.stopContainers()
	r.k.deletePod(ctx, r.pod)
	r.k.event("%s: stopped and deleted", r.name())
}

// stopContainers stops the app containers, then the sidecars in reverse
// order of start.
func (r *podRun) stopContainers() {
	r.mu.Lock()
	var apps, sidecars []*container
	for _, c := range r.procs {
		c.stopping = true
		if c.init {
			sidecars = append(sidecars, c)
		} else {
			apps = append(apps, c)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range apps {
		wg.Go(c.proc.Stop)
	}
	wg.Wait()
	for i := len(r.pod.Spec.InitContainers) - 1; i >= 0; i-- {
		for _, c := range sidecars {
			if c.spec.Name == r.pod.Spec.InitContainers[i].Name {
				c.proc.Stop()
			}
		}
	}
}

// teardown stops whatever still runs and removes the namespace.
func (r *podRun) teardown() {
	r.stopContainers()
	r.mu.Lock()
	ns := r.ns
	r.mu.Unlock()
	if ns != nil {
		if err := r.k.cfg.Net.RemovePod(ns); err != nil {
			r.k.event("%s: %v", r.name(), err)
		}
	}
}

// patchStatus writes the pod's status as the kubelet would.
func (r *podRun) patchStatus(ctx context.Context, phase corev1.PodPhase, ready bool) error {
	r.mu.Lock()
	ip, start := r.ip, r.started
	var initStatuses, statuses []corev1.ContainerStatus
	for _, c := range r.pod.Spec.InitContainers {
		initStatuses = append(initStatuses, r.containerStatus(c))
	}
	for _, c := range r.pod.Spec.Containers {
		statuses = append(statuses, r.containerStatus(c))
	}
	r.mu.Unlock()
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()}
	}
	hub := r.k.cfg.Net.Hub.IP.String()
	st := corev1.PodStatus{
		Phase:  phase,
		HostIP: hub, HostIPs: []corev1.HostIP{{IP: hub}},
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, true),
			cond(corev1.PodInitialized, phase == corev1.PodRunning),
			cond(corev1.ContainersReady, ready),
			cond(corev1.PodReady, ready),
		},
		InitContainerStatuses: initStatuses,
		ContainerStatuses:     statuses,
	}
	if ip.IsValid() {
		st.PodIP, st.PodIPs = ip.String(), []corev1.PodIP{{IP: ip.String()}}
	}
	if !start.IsZero() {
		t := metav1.NewTime(start)
		st.StartTime = &t
	}
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if _, err := r.k.client.CoreV1().Pods(r.pod.Namespace).Patch(ctx, r.pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// containerStatus; r.mu held.
func (r *podRun) containerStatus(spec corev1.Container) corev1.ContainerStatus {
	s := corev1.ContainerStatus{Name: spec.Name, Image: spec.Image, ImageID: "podharness://" + spec.Image}
	c, ok := r.procs[spec.Name]
	at, done := r.completed[spec.Name]
	switch {
	case done:
		s.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed", FinishedAt: metav1.NewTime(at)}
		s.Ready = true
	case !ok:
		s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
	case c.proc.Exited():
		s.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1, StartedAt: metav1.NewTime(c.startedAt)}
	default:
		s.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
		s.Ready = c.ready
		started := true
		s.Started = &started
	}
	return s
}

// errUnsupported marks a pod spec feature the harness does not emulate.
var errUnsupported = errors.New("not supported by podharness")

func unsupported(what string) error { return fmt.Errorf("%s: %w", what, errUnsupported) }
