// Package podharness plays the scheduler and the kubelet of one Node for
// tests against a real API server (tests/kubeharness), so that the pods the
// real controllers create run for real: the injected init step writes its
// iptables rules, the injected sidecar and the app run as processes, and the
// real EndpointSlice controller publishes the pods that pass their probes.
//
// # What it does, per pod
//
// Start registers the Node and watches every Pod with an informer. A pod
// with no spec.nodeName is bound to the Node (the Binding subresource, as
// the scheduler does), so Deployments and ReplicaSets work. A pod bound to
// the Node is run by a goroutine the Kubelet owns:
//
//  1. A network namespace with a veth on the harness's bridge
//     (tests/netnsharness) and the next free address; its /etc/hosts maps
//     every Service of the cluster (with a ClusterIP) to that ClusterIP
//     under the names cluster DNS would answer (<svc> for the pod's own
//     namespace, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.<domain>).
//     No kube-proxy: the pods' sidecars route ClusterIP:port themselves.
//  2. status.podIP is patched, then the volumes are made in a directory of
//     the pod: projected ServiceAccount tokens from the TokenRequest API,
//     bound to the pod, with the audience and lifetime the volume asks for;
//     ConfigMaps (waited for, as the kubelet does); downward API fields;
//     emptyDirs. Other volume kinds fail the pod.
//  3. The containers run exactly as the stored pod spec says: the image is
//     mapped to a binary (Config.Images), the args get the container's
//     environment ($(VAR) expansion; env values and the downward API
//     fieldRefs a pod uses), runAsUser/runAsGroup become setpriv, and each
//     volumeMount is a bind mount in a private mount namespace over a tmpfs
//     /run (mount paths must be under /run or /var/run). Init containers run
//     in order: a regular one to completion (exit 0), a restartable one
//     (native sidecar) is started and its startupProbe awaited; then the
//     containers start and their startupProbes are awaited.
//  4. A prober runs the HTTP/TCP readiness probes the pod spec holds (after
//     the injector rewrote them) from the Node's network, every
//     periodSeconds, with failureThreshold; Ready and ContainersReady and
//     the container statuses are patched on every change. A container that
//     exits while the pod runs makes the pod not ready and is reported as a
//     test error (there are no restarts).
//
// When a pod gets a deletionTimestamp the Kubelet marks it not ready, calls
// Config.Drain (bounded by the grace period; the test decides what "drained"
// means, e.g. every proxy has acknowledged endpoints without the pod),
// stops the containers (SIGTERM, then SIGKILL; the app containers first,
// then the sidecars, in reverse order), deletes the pod with grace period 0
// and removes its namespace. A pod deleted outright is stopped at once.
//
// # Limits
//
// One Node; no container restarts; no token rotation (tokens live as long as
// their expirationSeconds, which outlives a test); exec probes, subPath and
// container commands (use args; the image is the entrypoint) are refused
// with an error in the pod's events log rather than emulated.
//
// # Goroutines
//
// The Kubelet owns the informer, one reconcile goroutine and one goroutine
// per running pod; Start's t.Cleanup stops them all and waits.
package podharness
