// Package router compiles an accepted xDS snapshot into the immutable
// routing table the listeners serve from, and matches requests against it.
//
// Request path: a listener picks its filter chain (Listener.Chain: the
// outbound listener has one for any port, the inbound one has one per
// workload port), the chain's Routes pick the virtual host by the exact,
// lower-cased Host header (then "*.<suffix>" for exactly one more label,
// then "*"), the virtual host picks
// the first Route whose Match accepts the request (path prefix or exact path,
// and header matchers), and the route's Cluster holds the lb.Picker that
// chooses the endpoint.
//
// Tables are values: Compile builds a new Table for every published snapshot
// and the sidecar swaps it in with an atomic.Pointer, so a request sees one
// whole configuration and takes no lock. A cluster whose resource and
// endpoints did not change keeps its *Cluster (and its picker's position)
// from the previous table.
//
// Matching (docs/architecture.md, Resilience contract): routes in order,
// first match wins; path exact, prefix, path_separated_prefix or safe_regex
// (whole path), headers (exact, prefix, suffix, contains, whole-value regex,
// ":method"), query parameters (first value). A route carries its cluster
// or weighted_clusters (Route.PickCluster), its timeout, its compiled retry
// policy (filter/retry), request_body_buffer_limit and hash_policy.
//
// A Cluster carries its lb.Picker, its circuit-breaker limits and retry
// budget (filter/budget), its outlier detector (filter/outlier) and its
// counters (filter/metrics, in Table.Metrics). When only the endpoints
// change, the per-endpoint state (in-flight counts, latency, breakers) and
// the limit counters carry over by address.
//
// Compile rejects what the data path cannot serve as configured (rewrites,
// cluster_header splits, unknown retry conditions or host predicates,
// domain wildcards other than "*" and "*.<suffix>" (one label), duplicate
// domains): the error becomes
// the NACK's reason and the previous table stays.
//
// Goroutines: none. Compile runs on the xDS client's goroutine; a Table is
// read concurrently by every request goroutine and never written.
package router
