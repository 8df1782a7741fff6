// Package demo drives the shop demo (`make demo`, cmd/shop-demo).
//
// Run copies the mesh file into a fresh run directory, starts the shop on it
// with control-plane/launch (the engine of `weftctl up`), and drives a
// bounded load: a fixed number of GET /checkout requests at a fixed rate,
// spread over a few workers, sent through the loadgen workload's sidecar (an
// HTTP proxy) to http://api-gateway.shop.svc.cluster.local:8080/checkout, so
// every hop goes through the mesh. Mid-run it scales payment from 1 to 3
// endpoints and back by editing its copy of the mesh file (payment-2 and
// payment-3 run all along; their label serving: "yes"/"no" decides whether the
// payment Service selects them), and the control plane follows the edit.
//
// Each reply names the instance that served every hop, so at the end Run
// prints a table per route (requests, errors, p50/p99 and which endpoints
// served them) and how long the scale-up and scale-down took to show in the
// traffic, tears everything down, and returns an error unless no request
// failed, the new endpoints served traffic, and the removed ones stopped
// serving.
//
// Goroutines: the ticker (producer) and the workers are owned by Run's load
// phase and end when the bounded request count is spent; the scaler runs on
// Run's own goroutine between them.
package demo
