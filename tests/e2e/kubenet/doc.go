// Package kubenet is the Kubernetes data-plane end-to-end test: the real
// API server, etcd and kube-controller-manager (tests/kubeharness), the real
// weft-control-plane with --registry=kube, the real weft-injector registered
// as a webhook by URL, and tests/podharness playing the scheduler and the
// kubelet, so that the pods of real Deployments run with the init step's
// iptables rules, the injected sidecar (uid 1337, a TokenRequest token bound
// to the pod) and the shop app, each pod in its own network namespace.
//
// TestKubeDataPlane proves, against what the controllers and the webhook
// really produce: apps call each other by Service name (every form) and by
// ClusterIP (no kube-proxy: each pod's sidecar routes ClusterIP:port from the
// original destination); scaling a Deployment up and down moves traffic
// within 1 s of the pod's Ready change with no failed request under a
// bounded load; a pod deleted under load drains without a failed request;
// an app dialling a peer's pod IP still goes through its sidecar (mTLS;
// an AuthorizationPolicy and a NetworkPolicy applied through the API server
// deny it, and deleting the NetworkPolicy lets it through again).
//
// The Kubelet's drain step (podharness.Config.Drain) waits, before it stops
// a deleted pod's containers, until its EndpointSlice entry is not ready
// and every other connected proxy has acknowledged endpoints in which the
// pod is not HEALTHY (the control plane's /debug/proxies and config_dump):
// the stand-in for a preStop hook. Without it (a kubelet that sends SIGTERM
// at once) the app can exit while peers still route to the pod, and its
// sidecar answers 502 for those requests (docs/architecture.md, Kubernetes).
//
// It runs as root (network namespaces, iptables); otherwise it skips, or
// fails with WEFT_REQUIRE_NETNS set; without the Kubernetes binaries it
// skips, or fails with WEFT_REQUIRE_K8S set.
package kubenet
