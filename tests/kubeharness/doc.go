// Package kubeharness starts a real Kubernetes control plane on loopback
// for tests: etcd and kube-apiserver (and, on request, kube-controller-manager
// with the EndpointSlice, ServiceAccount, namespace and garbage-collector
// controllers; node-lifecycle controllers off because no kubelet runs). No
// Docker, no kubelet, no scheduler: pods stay Pending unless a test binds
// and reports them itself (see doc of WithControllerManager).
//
// The binaries come from hack/k8s/build.sh (versions pinned in
// hack/k8s/versions.env), found in $WEFT_K8S_BIN or in the build script's
// cache directory. When they are missing the test is skipped with a message
// saying how to build them, unless WEFT_REQUIRE_K8S is set (CI sets it),
// in which case it fails.
//
// Start picks a random loopback address 127.<100-250>.x.y and free ports on
// it, generates a CA and every certificate with crypto/x509 (apiserver
// serving, admin client in system:masters, controller-manager client, the
// ServiceAccount signing key), starts each process in its own process group
// with its log in the cluster's temp dir, waits for readiness with
// deadlines (a process that exits fails the wait at once, with its log),
// applies api/crds/*.yaml and waits until they are Established, and writes
// a kubeconfig. t.Cleanup stops the processes (SIGTERM to the group, SIGKILL
// after a grace period, in reverse order) and prints the tails of their logs
// when the test failed; the temp dir goes with t.TempDir.
//
// Pitfalls of Kubernetes 1.37 on loopback that the harness handles:
//   - --endpoint-reconciler-type=none: a loopback advertise address is
//     refused for the "kubernetes" Service endpoints, so it has none.
//   - The EndpointSlice controller skips pods whose spec.nodeName names a
//     Node that does not exist: create Node objects (Cluster.CreateNode).
//   - node-lifecycle and taint-eviction controllers are off, otherwise
//     heartbeat-less Nodes get tainted and their pods evicted after ~5 min.
//   - ServiceAccount admission rejects pods until the namespace has its
//     "default" ServiceAccount: Cluster.CreateNamespace makes it when no
//     controller-manager runs, and waits for it when one does.
//   - Admission webhooks registered with clientConfig.url https://127.0.0.1:P
//     are called (the apiserver runs on the host network); the caBundle must
//     sign that URL's certificate (Cluster.CA.IssueServing).
package kubeharness
