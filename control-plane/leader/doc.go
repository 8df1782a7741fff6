// Package leader elects one leader among the control-plane replicas with a
// coordination.k8s.io Lease (client-go leaderelection) and runs the
// leader-only work while leadership lasts.
//
// Every replica serves xDS and signs certificates; only the leader writes to
// the API server (the CA Secret on first start, the trust-bundle
// ConfigMaps, the webhook caBundle). Elector.Run campaigns until its context
// ends: when it wins it calls lead with a context that is cancelled when
// leadership is lost (lead must return then), and it campaigns again after
// a loss. IsLeader is safe to call from any goroutine. On a clean stop the
// lease is released so another replica takes over at once rather than after
// the lease duration.
package leader
