// Package translate turns the mesh model into the Envoy v3 xDS resources of
// one proxy: Build(state, workload, meshconfig) is a pure function, with no
// clients, clock or logger, and golden-tested (testdata/).
//
// What it produces is the "xDS contract" of docs/architecture.md, which the
// sidecar consumes; change both together:
//
//   - Listeners "outbound" (<ip>:15001, one HttpConnectionManager chain using
//     RDS "outbound" over ADS) and "inbound" (<ip>:15006, one chain per
//     inbound port — every TCP port the workload declares and every workload
//     port a Service targets — matched on destination_port and
//     transport_protocol "tls" with a DownstreamTlsContext, plus a
//     "raw_buffer" chain in PERMISSIVE mode, with an inline
//     RouteConfiguration "inbound|<port>" to cluster "inbound|<port>||").
//   - Transport sockets (tls.go): an UpstreamTlsContext on every outbound
//     cluster with sidecar endpoints, allowing exactly their SPIFFE IDs;
//     certificates and roots by SDS name (Secrets "default" and "ROOTCA"),
//     never inline. The mTLS mode is the workload's weft.dev/mtls-mode
//     annotation, else its Namespace's, else the mesh config's.
//   - RouteConfiguration "outbound": one VirtualHost "<fqdn>:<port>" per TCP
//     service port in the mesh, with every host name an app may use for it.
//     Its routes: one per match of every HTTPRoute rule attached to that
//     Service port, in Gateway API precedence order (resilience.go), then
//     the "default" catch-all route to the port's own cluster. Every route
//     carries an explicit timeout and retry_policy (the rule's, else the
//     Service's TrafficPolicy's, else the mesh defaults of
//     api/mesh/resilience.go), weighted_clusters for splits, and a
//     hash_policy when a backend is RING_HASH.
//   - Clusters "outbound|<port>||<fqdn>" (EDS over ADS, HTTP/2, lb_policy,
//     circuit_breakers with a retry budget, outlier_detection and locality
//     settings from the Service's TrafficPolicy or the defaults) and
//     "inbound|<port>||" (STATIC, the app at <ip>:<port>, HTTP/1.1).
//   - Authorization (rbac.go): RBAC HTTP filters before the router —
//     weft.authz.audit/deny/allow from AuthorizationPolicies and
//     weft.netpol.ingress per inbound port, weft.netpol.egress on the
//     outbound listener — with NetworkPolicy selectors resolved to
//     workloads here (identity, plus source address when a selector picks
//     only some workloads of a service account). An egress-isolated proxy
//     gets only the virtual hosts, clusters and endpoints it may reach.
//   - A ClusterLoadAssignment per outbound cluster; endpoints that run a
//     sidecar carry filter_metadata["weft"] {tunnel_port, workload, identity}.
//
// Before it returns, Build checks that the result is consistent (every RDS
// name, route cluster and EDS cluster resolves; every assignment belongs to
// a cluster) and that every resource and typed config passes ValidateAll, so
// a bad translation never reaches the snapshot cache: the caller keeps the
// proxy's previous resources instead.
//
// Output is deterministic: resources are sorted by name and built from the
// model's sorted slices, so equal inputs give byte-equal deterministic
// marshalling, which the xds package hashes to skip unchanged proxies.
package translate
