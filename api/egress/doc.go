// Package egress is the egress gateway's table (docs/architecture.md,
// Egress contract): the external destinations, how to reach them and who
// may, in the JSON shape the control plane puts in the gateway's filter
// chain metadata, and the matching both sides agree on (hosts with
// one-label wildcards, principal and path patterns). The control plane
// builds a Table; the gateway compiles it with Compile into an immutable
// Index and looks requests up in it without locks.
package egress
