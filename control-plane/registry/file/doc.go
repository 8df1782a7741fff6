// Package file is the registry of local mode: it reads the mesh from one
// multi-document YAML file in Kubernetes' shape and follows the file as it
// changes.
//
// # Kinds
//
//   - v1 Service: selector, ports (name, port, targetPort as a number or a
//     name, protocol), optional clusterIP. A Service with a selector has as
//     endpoints the WorkloadEntries its selector matches in its namespace,
//     as a Service selects Pods; a named targetPort resolves against each
//     entry's ports. A Service of type ExternalName is an external
//     destination (buildEgress; docs/architecture.md, Egress contract):
//     no cluster and no endpoints, reached through the egress gateway by
//     the workloads of its own namespace.
//   - discovery.k8s.io/v1 EndpointSlice: more endpoints for the Service its
//     kubernetes.io/service-name label names, for endpoints that run no
//     sidecar (dialled directly). Slice ports match Service ports by name;
//     the conditions ready, serving and terminating are kept.
//   - weft.dev/v1alpha1 WorkloadEntry: a workload (local process, VM) with
//     its address, service account, ports, locality and weight. Each one
//     runs a sidecar whose xDS node id is <name>.<namespace>.
//   - gateway.networking.k8s.io/v1 HTTPRoute (sigs.k8s.io/gateway-api
//     types), bound to Services by parentRefs of kind Service (GAMMA): path,
//     header, query-param and method matches, weighted backendRefs to
//     Service ports of the same namespace, timeouts.request and
//     timeouts.backendRequest, retry {attempts, codes, backoff}. Filters,
//     sessionPersistence, hostnames and sectionName are rejected.
//   - v1 Namespace: only its annotations, for weft.dev/mtls-mode (STRICT or
//     PERMISSIVE), which WorkloadEntries may also carry.
//   - networking.k8s.io/v1 NetworkPolicy (Kubernetes semantics, policyTypes
//     defaulted) and weft.dev/v1alpha1 AuthorizationPolicy (policy.go):
//     selectors, peers, ipBlocks, ports (named, endPort), rules; namespace
//     labels come from v1 Namespace objects plus
//     kubernetes.io/metadata.name. An egress-isolated workload whose rules
//     allow no port 53 gets a warning (State.Authz.Warnings), not an error.
//   - weft.dev/v1alpha1 TrafficPolicy: per-Service load balancing,
//     connection-pool limits, outlier detection, retry budget, default
//     retry and timeout; at most one per Service. One whose targetRef is
//     a weft.dev ExternalService or a Service of type ExternalName is that
//     external destination's (model.ExternalService.Policy), applied by
//     the egress gateway.
//   - weft.dev/v1alpha1 ExternalService, and v1 Service of type
//     ExternalName: external destinations (egress.go).
//
// Objects are decoded with the Kubernetes API types and the API server's
// strictness (sigs.k8s.io/yaml to JSON, sigs.k8s.io/json case-sensitive
// with unknown and duplicate fields rejected). A missing namespace is
// "default". Adding a kind takes a slice in objects, an entry in knownKinds
// (kinds.go) with a validate function, and its use in build.go.
//
// # Checks
//
// Besides decoding, Parse rejects: an unknown apiVersion/kind; a missing
// required field; invalid names, labels, ports and addresses; two objects of
// one kind with the same namespace/name; a duplicate port or port name in
// one Service or WorkloadEntry; two WorkloadEntries with one address; two
// Services with one clusterIP; a workload port or a Service targetPort in the
// sidecar's reserved range (mesh.ReservedPortFirst-Last, 15000-15020); a
// Service selector that matches no WorkloadEntry; a named targetPort that a
// selected entry does not declare; an EndpointSlice of an unknown Service or
// port, or with an endpoint at a WorkloadEntry's address; an HTTPRoute whose
// parentRef or backendRef names an unknown Service or port, whose weights
// are all zero, whose durations are not GEP-2257 durations (or whose
// backendRequest is longer than request), whose retry codes are outside
// 400-599 or whose regular expressions are not RE2; a TrafficPolicy for an
// unknown Service or a second one for a Service, RingHash without
// consistentHash, bad durations or percentages, or maxRetries together with
// retryBudget. Each problem is an
// *Error with file, line, object, field and reason:
//
//	mesh.yaml:23: Service shop/payment: spec.ports[1].port: duplicate port 8080
//
// # Following the file
//
// Source.Run reads the file every 100 ms (WithPollInterval) and parses it
// when its content hash changed, so an edit reaches the xds debouncer within
// one interval whether the editor writes in place or renames over the file.
// A bad content is logged and reported once and never pushed: the last good
// state stays in force.
//
// Parse is pure and exported for weftctl and the local launcher, which learn
// the WorkloadEntries (name, namespace, serviceAccount, address, labels,
// annotations, ports) from State.Workloads.
package file
