package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficPolicy sets how sidecars treat traffic to one Service: load
// balancing, connection-pool limits, circuit breaking and outlier detection,
// the retry budget, and the retries and timeouts used when no HTTPRoute sets
// them. It translates to the standard Envoy Cluster and RouteAction fields.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=tp,categories=weft
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="LB",type=string,JSONPath=`.spec.loadBalancer.algorithm`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TrafficPolicySpec `json:"spec"`
}

// TrafficPolicySpec is the per-destination behaviour. Unset fields take the
// mesh defaults of api/mesh/resilience.go.
// +kubebuilder:validation:XValidation:rule="!(has(self.retryBudget) && has(self.connectionPool) && has(self.connectionPool.maxRetries))",message="set either connectionPool.maxRetries or retryBudget, not both"
type TrafficPolicySpec struct {
	// TargetRef is the Service (or the ExternalService, or the Service of
	// type ExternalName, whose HTTP requests the egress gateway treats
	// with it) this policy applies to.
	TargetRef TargetRef `json:"targetRef"`
	// LoadBalancer picks endpoints.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// ConnectionPool limits, enforced per calling sidecar; past them
	// requests fail fast with 503.
	// +optional
	ConnectionPool *ConnectionPool `json:"connectionPool,omitempty"`
	// OutlierDetection ejects failing endpoints (a breaker per endpoint).
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// RetryBudget caps retries as a share of live requests.
	// +optional
	RetryBudget *RetryBudget `json:"retryBudget,omitempty"`
	// Retry is the default retry policy when no route sets one.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
	// Timeout is the default request timeout when no route sets one.
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`
}

// LBAlgorithm names an endpoint picker.
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;Random;RingHash;LeastLatency
type LBAlgorithm string

// Load-balancing algorithms.
const (
	LBRoundRobin   LBAlgorithm = "RoundRobin"
	LBLeastRequest LBAlgorithm = "LeastRequest"
	LBRandom       LBAlgorithm = "Random"
	LBRingHash     LBAlgorithm = "RingHash"
	LBLeastLatency LBAlgorithm = "LeastLatency"
)

// LoadBalancer configures endpoint picking.
// +kubebuilder:validation:XValidation:rule="self.algorithm != 'RingHash' || has(self.consistentHash)",message="consistentHash is required when algorithm is RingHash"
type LoadBalancer struct {
	// Algorithm: RoundRobin (default), LeastRequest (power of two choices),
	// Random, RingHash (consistent hash, see consistentHash), LeastLatency
	// (peak EWMA). Endpoint weights apply to every algorithm.
	// +kubebuilder:default=RoundRobin
	// +optional
	Algorithm LBAlgorithm `json:"algorithm,omitempty"`
	// ConsistentHash says what RingHash hashes.
	// +optional
	ConsistentHash *ConsistentHash `json:"consistentHash,omitempty"`
	// LocalityAware prefers endpoints in the caller's zone and fails over
	// when too few of them are healthy.
	// +optional
	LocalityAware bool `json:"localityAware,omitempty"`
}

// ConsistentHash picks the hash key; exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.header), has(self.cookie), has(self.sourceIP) && self.sourceIP].filter(x, x).size() == 1",message="set exactly one of header, cookie, sourceIP"
type ConsistentHash struct {
	// Header whose value is hashed.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Header string `json:"header,omitempty"`
	// Cookie whose value is hashed.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Cookie string `json:"cookie,omitempty"`
	// SourceIP hashes the caller's address (session affinity by IP).
	// +optional
	SourceIP bool `json:"sourceIP,omitempty"`
}

// ConnectionPool limits, as Envoy's circuit_breakers thresholds.
type ConnectionPool struct {
	// MaxConnections to all endpoints of the service.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConnections *uint32 `json:"maxConnections,omitempty"`
	// MaxPendingRequests waiting for a connection.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxPendingRequests *uint32 `json:"maxPendingRequests,omitempty"`
	// MaxRequests in flight.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequests *uint32 `json:"maxRequests,omitempty"`
	// MaxRetries in flight: a fixed cap that replaces the retry budget
	// (Envoy ignores max_retries when a retry budget is set).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxRetries *uint32 `json:"maxRetries,omitempty"`
}

// OutlierDetection configures the per-endpoint breaker.
type OutlierDetection struct {
	// Consecutive5xx failures that eject an endpoint (0 turns it off).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Consecutive5xx *uint32 `json:"consecutive5xx,omitempty"`
	// FailurePercentage over Interval that ejects an endpoint (0 off).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailurePercentage *uint32 `json:"failurePercentage,omitempty"`
	// MinRequests in Interval before FailurePercentage applies.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinRequests *uint32 `json:"minRequests,omitempty"`
	// Interval between sweeps of the failure-percentage counters.
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// BaseEjectionTime; an endpoint ejected n times is out for n times it.
	// +optional
	BaseEjectionTime *Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent of a service's endpoints ejected at once.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxEjectionPercent *uint32 `json:"maxEjectionPercent,omitempty"`
}

// RetryBudget caps retries at Percent of active requests, with a floor.
type RetryBudget struct {
	// Percent of active requests that may be retries.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent uint32 `json:"percent"`
	// MinRetryConcurrency is the floor of concurrent retries always allowed.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinRetryConcurrency *uint32 `json:"minRetryConcurrency,omitempty"`
}

// RetryPolicy says when and how often to retry.
type RetryPolicy struct {
	// Attempts after the first one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts uint32 `json:"attempts"`
	// RetryOn lists the conditions (Envoy's retry_on names):
	// connect-failure, refused-stream, reset, 5xx, gateway-error,
	// retriable-status-codes (with Codes; implied when Codes is set).
	// Default connect-failure, refused-stream, reset. (Not "on": YAML 1.1
	// reads an unquoted on as true.)
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Enum=connect-failure;refused-stream;reset;5xx;gateway-error;retriable-status-codes
	RetryOn []string `json:"retryOn,omitempty"`
	// Codes (400-599) retried; they imply retriable-status-codes.
	// +kubebuilder:validation:items:Minimum=400
	// +kubebuilder:validation:items:Maximum=599
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Codes []uint32 `json:"codes,omitempty"`
	// PerTryTimeout bounds each attempt.
	// +optional
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	// BackoffBase and BackoffMax shape the exponential backoff with jitter.
	// +optional
	BackoffBase *Duration `json:"backoffBase,omitempty"`
	// +optional
	BackoffMax *Duration `json:"backoffMax,omitempty"`
	// NonIdempotent allows retrying POST/PATCH (bodies are buffered up to a
	// limit).
	// +optional
	NonIdempotent bool `json:"nonIdempotent,omitempty"`
}

// TrafficPolicyList is a list of TrafficPolicies.
//
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficPolicy `json:"items"`
}
