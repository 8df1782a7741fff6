package model

import (
	"cmp"
	"slices"
	"time"
)

// HTTPRoute is a Gateway API HTTPRoute bound to Services (GAMMA): its rules
// replace the default route of the parent Services' outbound virtual hosts
// for the requests they match. The registry has checked every reference.
type HTTPRoute struct {
	Name      string
	Namespace string
	// Parents are the Services the route attaches to.
	Parents []ParentRef
	// Rules in the order the user wrote them.
	Rules []RouteRule
}

// ParentRef is a Service a route attaches to; Port 0 means every TCP port.
type ParentRef struct {
	Namespace string
	Name      string
	Port      uint32
}

// Attaches reports whether the parent covers a port of service ns/name.
func (p ParentRef) Attaches(namespace, name string, port uint32) bool {
	return p.Namespace == namespace && p.Name == name && (p.Port == 0 || p.Port == port)
}

// RouteRule is one rule: any of its matches selects it.
type RouteRule struct {
	// Matches are ORed; never empty (the registry fills in PathPrefix "/").
	Matches []RouteMatch
	// Backends at least one, with at least one weight above zero.
	Backends []Backend
	// Timeout is timeouts.request (0 = none); nil when unset.
	Timeout *time.Duration
	// BackendTimeout is timeouts.backendRequest, the per-try timeout (0 =
	// none); nil when unset.
	BackendTimeout *time.Duration
	// Retry is the rule's retry stanza; nil when unset.
	Retry *RouteRetry
}

// PathMatchType is how a path is matched.
type PathMatchType string

// Path match types, as Gateway API spells them.
const (
	PathExact  PathMatchType = "Exact"
	PathPrefix PathMatchType = "PathPrefix"
	PathRegex  PathMatchType = "RegularExpression"
)

// PathMatch matches the request path (without the query).
type PathMatch struct {
	Type  PathMatchType
	Value string
}

// StringMatch matches a header or query parameter by name, exactly or by a
// whole-value RE2 regular expression.
type StringMatch struct {
	Name  string
	Value string
	Regex bool
}

// RouteMatch is one match; its conditions are ANDed.
type RouteMatch struct {
	Path    PathMatch
	Headers []StringMatch
	Query   []StringMatch
	// Method is "" for any.
	Method string
}

// Backend is a Service port and its weight.
type Backend struct {
	Namespace string
	Name      string
	Port      uint32
	Weight    uint32
}

// RouteRetry is Gateway API's HTTPRouteRetry; nil fields are unset.
type RouteRetry struct {
	Attempts *uint32
	Codes    []uint32
	Backoff  *time.Duration
}

// LBAlgorithm is an endpoint picker.
type LBAlgorithm string

// Load-balancing algorithms (TrafficPolicy's names).
const (
	LBRoundRobin   LBAlgorithm = "RoundRobin"
	LBLeastRequest LBAlgorithm = "LeastRequest"
	LBRandom       LBAlgorithm = "Random"
	LBRingHash     LBAlgorithm = "RingHash"
	LBLeastLatency LBAlgorithm = "LeastLatency"
)

// TrafficPolicy is how callers treat one Service. Nil pointers are unset:
// translate fills in the mesh defaults (api/mesh/resilience.go).
type TrafficPolicy struct {
	Name      string
	Namespace string
	// Service is the target, in Namespace.
	Service string

	LB LBAlgorithm
	// Hash is the RingHash key; set exactly when LB is LBRingHash.
	Hash          *HashKey
	LocalityAware bool

	MaxConnections     *uint32
	MaxPendingRequests *uint32
	MaxRequests        *uint32
	// MaxRetries is a fixed cap on retries in flight; never set together
	// with RetryBudget.
	MaxRetries *uint32

	Outlier     *Outlier
	RetryBudget *RetryBudget
	Retry       *RetryPolicy
	Timeout     *time.Duration
}

// HashKey is what RingHash hashes; exactly one field is set.
type HashKey struct {
	Header   string
	Cookie   string
	SourceIP bool
}

// Outlier is the per-endpoint breaker.
type Outlier struct {
	Consecutive5xx     *uint32
	FailurePercentage  *uint32
	MinRequests        *uint32
	Interval           *time.Duration
	BaseEjectionTime   *time.Duration
	MaxEjectionPercent *uint32
}

// RetryBudget caps retries at Percent of in-flight requests.
type RetryBudget struct {
	Percent             uint32
	MinRetryConcurrency *uint32
}

// RetryPolicy is a Service's default retry policy.
type RetryPolicy struct {
	Attempts      uint32
	On            []string
	Codes         []uint32
	PerTryTimeout *time.Duration
	BackoffBase   *time.Duration
	BackoffMax    *time.Duration
	NonIdempotent bool
}

// WithTraffic returns a copy of s that also holds routes and policies,
// sorted by namespace and name (policies by namespace and target Service).
// The slices are copied; the values inside are shared and must not be
// changed.
func (s State) WithTraffic(routes []HTTPRoute, policies []TrafficPolicy) State {
	s.Routes = slices.Clone(routes)
	slices.SortFunc(s.Routes, func(a, b HTTPRoute) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	s.Policies = slices.Clone(policies)
	slices.SortFunc(s.Policies, func(a, b TrafficPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service))
	})
	return s
}

// Policy finds the TrafficPolicy of a Service.
func (s State) Policy(namespace, service string) (TrafficPolicy, bool) {
	i, ok := slices.BinarySearchFunc(s.Policies, [2]string{namespace, service}, func(p TrafficPolicy, k [2]string) int {
		return cmp.Or(cmp.Compare(p.Namespace, k[0]), cmp.Compare(p.Service, k[1]))
	})
	if !ok {
		return TrafficPolicy{}, false
	}
	return s.Policies[i], true
}

// RoutesFor lists the HTTPRoutes attached to a port of a Service, sorted by
// namespace and name.
func (s State) RoutesFor(namespace, service string, port uint32) []HTTPRoute {
	var out []HTTPRoute
	for _, r := range s.Routes {
		for _, p := range r.Parents {
			if p.Attaches(namespace, service, port) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
