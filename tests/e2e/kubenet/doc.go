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
// A pod is deleted under load twice: once with the Kubelet's drain step
// (podharness.Config.Drain: it waits, before it stops the containers, until
// the pod's EndpointSlice entry is not ready and every other connected
// proxy has acknowledged endpoints in which it is not HEALTHY, the stand-in
// for a preStop hook) and once without it, as a real kubelet does: the app
// exits while peers still route to the pod, its sidecar answers 503
// x-weft-app-unreachable and the callers' sidecars retry elsewhere. Neither
// may fail a request.
//
// It runs as root (network namespaces, iptables); otherwise it skips, or
// fails with WEFT_REQUIRE_NETNS set; without the Kubernetes binaries it
// skips, or fails with WEFT_REQUIRE_K8S set.
package kubenet
