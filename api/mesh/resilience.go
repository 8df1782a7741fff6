package mesh

import "time"

// Resilience defaults: what every outbound route and cluster gets when no
// HTTPRoute or TrafficPolicy says otherwise. docs/architecture.md
// ("Resilience contract") says how the sidecar reads each one from the xDS;
// the control plane always writes them explicitly.
const (
	// DefaultRequestTimeout is the whole-request deadline of a route that
	// sets none: 0, no timeout (streams and long polls stay possible; set
	// one with an HTTPRoute or a TrafficPolicy).
	DefaultRequestTimeout time.Duration = 0

	// DefaultRetryOn are the retry conditions of a route that sets no retry
	// policy (Envoy retry_on syntax): failures where the request never
	// reached the app, and resets of idempotent requests.
	DefaultRetryOn = RetryOnConnectFailure + "," + RetryOnRefusedStream + "," + RetryOnReset
	// DefaultRetryAttempts is the number of retries after the first try.
	DefaultRetryAttempts = 2
	// DefaultRetryBackoffBase is the base interval of the exponential
	// backoff between tries; the maximum is RetryBackoffMaxFactor times it
	// unless a policy sets one.
	DefaultRetryBackoffBase = 25 * time.Millisecond
	// RetryBackoffMaxFactor is max_interval / base_interval when a policy
	// gives only the base (Envoy's own default factor).
	RetryBackoffMaxFactor = 10
	// RetryHostSelectionMaxAttempts is how often a retry re-picks to avoid
	// endpoints already tried for the request.
	RetryHostSelectionMaxAttempts = 3
	// DefaultRetryBufferBytes is how much of a request body the sidecar
	// buffers so that the request can be retried.
	DefaultRetryBufferBytes = 64 << 10

	// DefaultMaxConnections, DefaultMaxPendingRequests and
	// DefaultMaxRequests are the per-cluster limits of each calling
	// sidecar (Envoy's circuit-breaker defaults, written explicitly).
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	// DefaultRetryBudgetPercent of in-flight requests may be retries, but
	// at least DefaultRetryBudgetMinConcurrency retries are always allowed.
	DefaultRetryBudgetPercent        = 20.0
	DefaultRetryBudgetMinConcurrency = 3

	// Outlier detection (a breaker per endpoint), on by default.
	DefaultOutlierConsecutive5xx      = 5
	DefaultOutlierInterval            = 5 * time.Second
	DefaultOutlierBaseEjectionTime    = 30 * time.Second
	DefaultOutlierMaxEjectionTime     = 300 * time.Second
	DefaultOutlierMaxEjectionPercent  = 50
	DefaultOutlierFailurePctMinVolume = 10

	// DefaultRingHashMinRingSize is the minimum number of entries of a
	// RING_HASH cluster's ring.
	DefaultRingHashMinRingSize = 1024
	// LeastRequestChoiceCount is the number of endpoints LEAST_REQUEST
	// compares (power of two choices).
	LeastRequestChoiceCount = 2
)

// Envoy retry_on conditions Weft uses.
const (
	RetryOnConnectFailure           = "connect-failure"
	RetryOnRefusedStream            = "refused-stream"
	RetryOnReset                    = "reset"
	RetryOn5xx                      = "5xx"
	RetryOnGatewayError             = "gateway-error"
	RetryOnRetriableStatusCodes     = "retriable-status-codes"
	RetryHostPredicatePreviousHosts = "envoy.retry_host_predicates.previous_hosts"
)

// Weft metadata keys under filter_metadata[MetadataNamespace] on routes and
// clusters (see the Resilience contract).
const (
	// MetadataRetryNonIdempotent (bool, on a Route) lets the sidecar retry
	// non-idempotent requests (POST, PATCH, ...) for every retry_on
	// condition, not only for connect-failure and refused-stream.
	MetadataRetryNonIdempotent = "retry_non_idempotent"
	// MetadataLB (string, on a Cluster) overrides lb_policy with a Weft
	// picker that Envoy has no enum for: MetadataLBLeastLatency.
	MetadataLB = "lb"
	// MetadataLBLeastLatency is peak-EWMA latency with power of two choices;
	// the cluster's lb_policy is LEAST_REQUEST for stock Envoy.
	MetadataLBLeastLatency = "least_latency"
	// MetadataLocality (string "region/zone/subzone", on a Cluster with
	// zone_aware_lb_config) is the calling proxy's own locality.
	MetadataLocality = "locality"
	// MetadataRoute (string "<ns>/<name>", on a Route made from an
	// HTTPRoute) names the HTTPRoute, for metrics and debugging.
	MetadataRoute = "route"
)

// DefaultRouteName is the name of the catch-all route of every outbound
// virtual host, after the HTTPRoute routes.
const DefaultRouteName = "default"
