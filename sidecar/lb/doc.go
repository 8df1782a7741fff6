// Package lb picks the endpoint a request goes to.
//
// A Picker is an immutable snapshot of one cluster's endpoints. The router
// builds a new Picker (New, from the cluster's lb_policy, Weft's "lb"
// metadata and zone_aware_lb_config) whenever the cluster or its
// ClusterLoadAssignment changes, and swaps it in with the rest of the
// routing table; a Picker is never updated in place. Picking is on the
// request path of every request: it takes no lock, and the only shared
// state is atomics: the round-robin counter and each endpoint's State
// (requests in flight, peak-EWMA latency, ejection deadline), which the
// router carries from table to table for the same address.
//
// Pickers: RoundRobin (smooth weighted round robin over a precomputed
// schedule), Random (weighted), LeastRequest (power of two choices on
// in-flight / weight), LeastLatency (P2C on peak-EWMA latency × (in-flight
// + 1) / weight, Linkerd-style, decaying with a 10 s constant), RingHash
// (ketama ring, 1024 points per unit of weight so an endpoint leaving moves
// only its own keys; no key: random), and the locality wrapper (same
// region and zone, then same region, then all: the first tier with a
// pickable endpoint).
//
// Only endpoints whose health_status is HEALTHY or UNKNOWN are in a Picker
// (UNHEALTHY, DRAINING, TIMEOUT and DEGRADED never are); an endpoint whose
// State is blocked (ejected by outlier detection, or half-open with its
// probe in flight) is skipped; endpoints in Context.Tried (previous_hosts)
// are avoided while another pickable endpoint exists.
//
// Goroutines: none. A Picker is safe for concurrent use by any number of
// request goroutines.
package lb
