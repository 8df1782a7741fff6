// Package kube holds the Kubernetes end-to-end tests: a real etcd and
// kube-apiserver (and kube-controller-manager) started on loopback by
// tests/kubeharness, and Weft's binaries run as processes against them.
//
// TestInjection runs the real weft-injector (built by TestMain, or taken from
// $WEFT_BIN_DIR) on a random loopback address with a serving certificate
// from the cluster's CA, registers it with a MutatingWebhookConfiguration
// whose clientConfig.url points at it, and checks what the API server stores:
// a Deployment's pods and bare pods in a labelled namespace carry the init
// step and the native sidecar; an unlabelled namespace and an opted-out pod
// are untouched; re-applying is a no-op; bad annotations are refused with the
// injector's message; with the webhook down, pods in unlabelled namespaces
// are still created and pods in labelled ones are refused (fail closed).
//
// Without the Kubernetes binaries (hack/k8s/build.sh) the tests skip, unless
// WEFT_REQUIRE_K8S is set.
package kube
