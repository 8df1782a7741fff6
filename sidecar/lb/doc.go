// Package lb picks the endpoint a request goes to.
//
// A Picker is an immutable snapshot of one cluster's endpoints. The router
// builds a new Picker whenever the cluster's ClusterLoadAssignment (EDS) or
// static load_assignment changes and swaps it in with the rest of the routing
// table; a Picker is never updated in place. Picking is on the request path of
// every request: it takes no lock and allocates nothing, and the only shared
// state is an atomic counter.
//
// Only endpoints whose health_status is HEALTHY or UNKNOWN are picked;
// UNHEALTHY, DRAINING, TIMEOUT and DEGRADED endpoints are left out when the
// Picker is built. Weights are carried on the Endpoint but round robin ignores
// them for now (the weighted pickers of the load-balancing issue use them).
//
// Goroutines: none. A Picker is safe for concurrent use by any number of
// request goroutines.
package lb
