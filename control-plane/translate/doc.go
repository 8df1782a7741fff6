// Package translate turns the mesh model into the Envoy v3 xDS resources of
// one proxy: Build(state, workload, meshconfig) is a pure function, with no
// clients, clock or logger, and golden-tested (testdata/).
//
// What it produces is the "xDS contract" of docs/architecture.md, which the
// sidecar consumes; change both together:
//
//   - Listeners "outbound" (<ip>:15001, one HttpConnectionManager chain using
//     RDS "outbound" over ADS) and "inbound" (<ip>:15006, one chain per
//     workload port a Service targets, matched on destination_port, with an
//     inline RouteConfiguration "inbound|<port>" to cluster "inbound|<port>||").
//   - RouteConfiguration "outbound": one VirtualHost "<fqdn>:<port>" per TCP
//     service port in the mesh, with every host name an app may use for it.
//   - Clusters "outbound|<port>||<fqdn>" (EDS over ADS, round robin, HTTP/2)
//     and "inbound|<port>||" (STATIC, the app at <ip>:<port>, HTTP/1.1).
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
