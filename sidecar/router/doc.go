// Package router compiles an accepted xDS snapshot into the immutable
// routing table the listeners serve from, and matches requests against it.
//
// Request path: a listener picks its filter chain (Listener.Chain: the
// outbound listener has one for any port, the inbound one has one per
// workload port), the chain's Routes pick the virtual host by the exact,
// lower-cased Host header ("*" is the only wildcard), the virtual host picks
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
// Compile rejects what the data path cannot serve as configured (regex
// matches, rewrites, weighted clusters, domain wildcards other than "*",
// duplicate domains): the error becomes the NACK's reason and the previous
// table stays. Retry and timeout settings on a route are accepted and not yet
// applied (the resilience issue applies them).
//
// Goroutines: none. Compile runs on the xDS client's goroutine; a Table is
// read concurrently by every request goroutine and never written.
package router
