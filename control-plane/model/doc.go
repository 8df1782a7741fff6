// Package model is the mesh as the translator sees it: services and their
// ports, the endpoints behind every service port, and the workloads (each
// runs one sidecar, one xDS node), plus the traffic configuration users
// write: HTTPRoutes bound to Services (matches, weighted backends, timeouts,
// retries) and TrafficPolicies (load balancing, limits, outlier detection,
// retry budget, default retries and timeouts), attached with
// State.WithTraffic. Unset policy fields stay nil: translate applies the
// mesh defaults of api/mesh/resilience.go.
//
// A State is an immutable value. A registry builds a fresh State for every
// change with NewState, which copies and sorts its input; after that nobody
// modifies it, so the xds package hands one State to many goroutines without
// locks. Every slice is in a deterministic order (services and workloads by
// namespace then name, ports by number, endpoints by address then port), so
// two States built from the same objects translate to byte-identical xDS.
//
// The model knows nothing about where it came from (a file, the Kubernetes
// API) nor about xDS: registries fill it, translate reads it.
package model
