// Package kube is the Kubernetes registry: a registry.Source that watches
// the API server with client-go shared informers and pushes the same
// model.State the file registry makes of a mesh file.
//
// # What it reads
//
//   - v1 Service (ClusterIP, headless: no cluster IP, multi-port, named
//     targetPort; a Service of type ExternalName is an external destination
//     reached through the egress gateway, as in the file registry:
//     docs/architecture.md, Egress contract), discovery.k8s.io/v1
//     EndpointSlice (ready/serving/terminating -> HEALTHY/DRAINING/UNHEALTHY,
//     zone -> locality, IPv4 and IPv6 slices alike), v1 Pod (the workloads:
//     a running pod with an IP that carries the injected sidecar container
//     mesh.ContainerSidecar is a proxy with node id mesh.NodeID(pod,
//     namespace), its service account, IP, labels, annotations and declared
//     container ports), v1 Namespace (labels, mTLS annotation),
//     networking.k8s.io/v1 NetworkPolicy, the mesh ConfigMap
//     (mesh.MeshConfigMapName in mesh.ControlPlaneNamespace), v1
//     ServiceAccount (references checked, see below).
//   - With a dynamic informer each, when the API server serves them (a
//     missing CRD is logged and skipped; it is looked up at start only):
//     gateway.networking.k8s.io/v1 HTTPRoute and weft.dev/v1alpha1
//     WorkloadEntry, TrafficPolicy, AuthorizationPolicy, ExternalService,
//     converted to their Go types.
//
// The objects go through file.Build, the same checks and assembly as the
// file registry; an object that fails its checks is left out and reported
// (logged, WithErrorHandler) while the rest of the cluster is pushed.
//
// # ServiceAccounts
//
// A workload's identity is its pod's spec.serviceAccountName (SPIFFE ID
// spiffe://<td>/ns/<ns>/sa/<name>); the ServiceAccount object adds nothing to
// it, and the API server itself refuses tokens of a deleted account. What the
// ServiceAccount informer is for is catching references that will break or
// never match, reported like the objects left out but changing nothing in the
// state (so a ServiceAccount event never pushes): a mesh pod whose account was
// deleted (its sidecar can no longer reconnect or renew its certificate; it
// stays an endpoint until then, since dropping it at once would turn a
// deletion into an outage), and AuthorizationPolicy / ExternalService sources
// naming an account that does not exist in a namespace the cluster has
// accounts in (a typo there allows or denies no one, silently).
//
// # Flow and goroutines
//
// Run owns the informer factories (their goroutines stop with Run's
// context). Every add, update (with a new resourceVersion: resyncs are
// ignored) and delete wakes one builder goroutine (a channel of capacity 1
// coalesces bursts), which lists every cache, builds the state, hashes it
// and calls push only when the hash changed. Nothing is pushed before every
// cache has synced.
package kube
