package translate

import (
	"cmp"
	"slices"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/model"
)

// This file is the resilience half of the translation (docs/architecture.md,
// "Resilience contract"): HTTPRoute rules become routes ahead of the default
// route, every route gets an explicit timeout and retry policy, and every
// outbound cluster gets its TrafficPolicy's (or the mesh defaults') load
// balancing, circuit breakers and outlier detection.

// retrySettings is the effective retry policy of one route.
type retrySettings struct {
	on        []string
	attempts  uint32
	codes     []uint32
	perTry    time.Duration // 0: none
	base, max time.Duration
	// maxSet says max came from a policy's backoffMax, not from base.
	maxSet        bool
	nonIdempotent bool
}

// defaultRetry is the retry policy of a route to a service that sets none
// on the route: the TrafficPolicy's retry, else the mesh defaults.
func defaultRetry(pol model.TrafficPolicy) retrySettings {
	rs := retrySettings{
		on:       strings.Split(mesh.DefaultRetryOn, ","),
		attempts: mesh.DefaultRetryAttempts,
		base:     mesh.DefaultRetryBackoffBase,
		max:      mesh.DefaultRetryBackoffBase * mesh.RetryBackoffMaxFactor,
	}
	rp := pol.Retry
	if rp == nil {
		return rs
	}
	rs.attempts = rp.Attempts
	if len(rp.On) > 0 {
		rs.on = slices.Clone(rp.On)
	}
	rs.codes = slices.Clone(rp.Codes)
	if len(rs.codes) > 0 && !slices.Contains(rs.on, mesh.RetryOnRetriableStatusCodes) {
		rs.on = append(rs.on, mesh.RetryOnRetriableStatusCodes)
	}
	if rp.PerTryTimeout != nil {
		rs.perTry = *rp.PerTryTimeout
	}
	if rp.BackoffBase != nil {
		rs.base = *rp.BackoffBase
		rs.max = rs.base * mesh.RetryBackoffMaxFactor
	}
	if rp.BackoffMax != nil {
		rs.max = *rp.BackoffMax
		rs.maxSet = true
	}
	rs.nonIdempotent = rp.NonIdempotent
	return rs
}

// ruleRetry lays an HTTPRoute rule's retry stanza and backendRequest
// timeout over the service default.
func ruleRetry(def retrySettings, rule model.RouteRule) retrySettings {
	rs := def
	rs.on = slices.Clone(def.on)
	if rt := rule.Retry; rt != nil {
		if rt.Attempts != nil {
			rs.attempts = *rt.Attempts
		}
		if len(rt.Codes) > 0 {
			rs.codes = slices.Clone(rt.Codes)
			if !slices.Contains(rs.on, mesh.RetryOnRetriableStatusCodes) {
				rs.on = append(rs.on, mesh.RetryOnRetriableStatusCodes)
			}
		}
		if rt.Backoff != nil {
			rs.base = *rt.Backoff
			if !rs.maxSet || rs.max < rs.base {
				rs.max = rs.base * mesh.RetryBackoffMaxFactor
			}
		}
	}
	if rule.BackendTimeout != nil {
		rs.perTry = *rule.BackendTimeout
	}
	return rs
}

func (b *builder) retryPolicy(rs retrySettings) (*route.RetryPolicy, error) {
	pred, err := typed(&previoushosts.PreviousHostsPredicate{})
	if err != nil {
		return nil, err
	}
	rp := &route.RetryPolicy{
		RetryOn:              strings.Join(rs.on, ","),
		NumRetries:           wrapperspb.UInt32(rs.attempts),
		RetriableStatusCodes: rs.codes,
		RetryBackOff: &route.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(rs.base),
			MaxInterval:  durationpb.New(rs.max),
		},
		RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{
			Name:       mesh.RetryHostPredicatePreviousHosts,
			ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: pred},
		}},
		HostSelectionRetryMaxAttempts: mesh.RetryHostSelectionMaxAttempts,
	}
	if rs.perTry > 0 {
		rp.PerTryTimeout = durationpb.New(rs.perTry)
	}
	return rp, nil
}

// policy is the TrafficPolicy of a service, or the zero policy.
func (b *builder) policy(namespace, name string) model.TrafficPolicy {
	p, _ := b.state.Policy(namespace, name)
	return p
}

// hashPolicy is the route hash policy for a RingHash service, or nil.
func hashPolicy(p model.TrafficPolicy) []*route.RouteAction_HashPolicy {
	if p.LB != model.LBRingHash || p.Hash == nil {
		return nil
	}
	var hp *route.RouteAction_HashPolicy
	switch h := p.Hash; {
	case h.Header != "":
		hp = &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Header_{
			Header: &route.RouteAction_HashPolicy_Header{HeaderName: h.Header},
		}}
	case h.Cookie != "":
		hp = &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
			Cookie: &route.RouteAction_HashPolicy_Cookie{Name: h.Cookie},
		}}
	case h.SourceIP:
		hp = &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}
	default:
		return nil
	}
	return []*route.RouteAction_HashPolicy{hp}
}

// rankedMatch is one match of one rule of one HTTPRoute, with what the
// Gateway API precedence looks at.
type rankedMatch struct {
	route *model.HTTPRoute
	rule  int
	match int
}

func pathClass(t model.PathMatchType) int {
	switch t {
	case model.PathExact:
		return 0
	case model.PathRegex:
		return 1
	default:
		return 2
	}
}

// pathLen is the length precedence compares: a PathPrefix's trailing "/"
// does not count (Gateway API ignores it).
func pathLen(p model.PathMatch) int {
	if p.Type == model.PathPrefix {
		return len(strings.TrimRight(p.Value, "/"))
	}
	return len(p.Value)
}

func (m rankedMatch) get() model.RouteMatch { return m.route.Rules[m.rule].Matches[m.match] }

// compareMatches orders by Gateway API precedence: Exact path, then
// RegularExpression (Weft's choice), then PathPrefix, longer values first;
// then a method match; then more header matches; then more query matches;
// then route namespace/name, rule index and match index.
func compareMatches(a, b rankedMatch) int {
	ma, mb := a.get(), b.get()
	return cmp.Or(
		cmp.Compare(pathClass(ma.Path.Type), pathClass(mb.Path.Type)),
		cmp.Compare(pathLen(mb.Path), pathLen(ma.Path)),
		cmp.Compare(boolInt(mb.Method != ""), boolInt(ma.Method != "")),
		cmp.Compare(len(mb.Headers), len(ma.Headers)),
		cmp.Compare(len(mb.Query), len(ma.Query)),
		cmp.Compare(a.route.Namespace, b.route.Namespace),
		cmp.Compare(a.route.Name, b.route.Name),
		cmp.Compare(a.rule, b.rule),
		cmp.Compare(a.match, b.match),
	)
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// vhostRoutes are the routes of a service port's virtual host: the
// HTTPRoute matches attached to it in precedence order, then the default
// route to the port's own cluster.
func (b *builder) vhostRoutes(svc model.Service, port uint32, clusterName string) ([]*route.Route, error) {
	pol := b.policy(svc.Namespace, svc.Name)
	def := defaultRetry(pol)
	attached := b.state.RoutesFor(svc.Namespace, svc.Name, port)
	var ranked []rankedMatch
	for i := range attached {
		for ri, rule := range attached[i].Rules {
			for mi := range rule.Matches {
				ranked = append(ranked, rankedMatch{route: &attached[i], rule: ri, match: mi})
			}
		}
	}
	slices.SortStableFunc(ranked, compareMatches)

	var out []*route.Route
	for _, rm := range ranked {
		rule := rm.route.Rules[rm.rule]
		timeout := requestTimeout(pol)
		if rule.Timeout != nil {
			timeout = *rule.Timeout
		}
		rs := ruleRetry(def, rule)
		action, err := b.routeAction(rule.Backends, timeout, rs)
		if err != nil {
			return nil, err
		}
		r := &route.Route{
			Name:   rm.route.Namespace + "/" + rm.route.Name + "/" + itoa(rm.rule) + "/" + itoa(rm.match),
			Match:  routeMatch(rm.get()),
			Action: &route.Route_Route{Route: action},
		}
		finishRoute(r, rs, structpb.NewStringValue(rm.route.Namespace+"/"+rm.route.Name))
		out = append(out, r)
	}

	action, err := b.routeAction([]model.Backend{{Namespace: svc.Namespace, Name: svc.Name, Port: port, Weight: 1}}, requestTimeout(pol), def)
	if err != nil {
		return nil, err
	}
	action.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: clusterName}
	r := &route.Route{
		Name:   mesh.DefaultRouteName,
		Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: action},
	}
	finishRoute(r, def, nil)
	return append(out, r), nil
}

// finishRoute sets the body buffer limit and the Weft route metadata.
func finishRoute(r *route.Route, rs retrySettings, name *structpb.Value) {
	r.RequestBodyBufferLimit = wrapperspb.UInt64(mesh.DefaultRetryBufferBytes)
	fields := map[string]*structpb.Value{}
	if name != nil {
		fields[mesh.MetadataRoute] = name
	}
	if rs.nonIdempotent {
		fields[mesh.MetadataRetryNonIdempotent] = structpb.NewBoolValue(true)
	}
	if len(fields) > 0 {
		r.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
			mesh.MetadataNamespace: {Fields: fields},
		}}
	}
}

func requestTimeout(pol model.TrafficPolicy) time.Duration {
	if pol.Timeout != nil {
		return *pol.Timeout
	}
	return mesh.DefaultRequestTimeout
}

func itoa(n int) string {
	return uitoa(uint32(n)) //nolint:gosec // rule and match indexes are small (Gateway API caps them at 64)
}

func uitoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var buf [10]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// routeAction sends to the backends (one cluster, or weighted clusters when
// more than one has a weight), with timeout, retry and hash policy.
func (b *builder) routeAction(backends []model.Backend, timeout time.Duration, rs retrySettings) (*route.RouteAction, error) {
	rp, err := b.retryPolicy(rs)
	if err != nil {
		return nil, err
	}
	a := &route.RouteAction{
		Timeout:     durationpb.New(timeout),
		RetryPolicy: rp,
	}
	var weighted []*route.WeightedCluster_ClusterWeight
	for _, be := range backends {
		if be.Weight == 0 {
			continue
		}
		name := mesh.OutboundClusterName(be.Port, mesh.ServiceHost(be.Name, be.Namespace, b.mc.ClusterDomain))
		weighted = append(weighted, &route.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(be.Weight)})
		if a.HashPolicy == nil {
			a.HashPolicy = hashPolicy(b.policy(be.Namespace, be.Name))
		}
	}
	if len(weighted) == 1 {
		a.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: weighted[0].GetName()}
	} else {
		a.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{Clusters: weighted}}
	}
	return a, nil
}

func stringMatcher(value string, regex bool) *matcher.StringMatcher {
	if regex {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: value}}}
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: value}}
}

func routeMatch(m model.RouteMatch) *route.RouteMatch {
	rm := &route.RouteMatch{}
	switch m.Path.Type {
	case model.PathExact:
		rm.PathSpecifier = &route.RouteMatch_Path{Path: m.Path.Value}
	case model.PathRegex:
		rm.PathSpecifier = &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: m.Path.Value}}
	default:
		if p := strings.TrimRight(m.Path.Value, "/"); p != "" {
			rm.PathSpecifier = &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}
		} else {
			rm.PathSpecifier = &route.RouteMatch_Prefix{Prefix: "/"}
		}
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, &route.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: stringMatcher(m.Method, false)},
		})
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, &route.HeaderMatcher{
			Name:                 h.Name,
			HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h.Value, h.Regex)},
		})
	}
	for _, q := range m.Query {
		rm.QueryParameters = append(rm.QueryParameters, &route.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Value, q.Regex)},
		})
	}
	return rm
}

// applyPolicy sets a service's load balancing, limits and outlier
// detection on its outbound cluster.
func (b *builder) applyPolicy(c *cluster.Cluster, pol model.TrafficPolicy) {
	meta := map[string]*structpb.Value{}
	switch pol.LB {
	case model.LBLeastRequest, model.LBLeastLatency:
		c.LbPolicy = cluster.Cluster_LEAST_REQUEST
		c.LbConfig = &cluster.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &cluster.Cluster_LeastRequestLbConfig{
			ChoiceCount: wrapperspb.UInt32(mesh.LeastRequestChoiceCount),
		}}
		if pol.LB == model.LBLeastLatency {
			meta[mesh.MetadataLB] = structpb.NewStringValue(mesh.MetadataLBLeastLatency)
		}
	case model.LBRandom:
		c.LbPolicy = cluster.Cluster_RANDOM
	case model.LBRingHash:
		c.LbPolicy = cluster.Cluster_RING_HASH
		c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(mesh.DefaultRingHashMinRingSize),
		}}
	default:
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	}
	if pol.LocalityAware {
		c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{
			LocalityConfigSpecifier: &cluster.Cluster_CommonLbConfig_ZoneAwareLbConfig_{ZoneAwareLbConfig: &cluster.Cluster_CommonLbConfig_ZoneAwareLbConfig{
				RoutingEnabled: &typev3.Percent{Value: 100},
				MinClusterSize: wrapperspb.UInt64(1),
			}},
		}
		meta[mesh.MetadataLocality] = structpb.NewStringValue(b.w.Locality.String())
	}
	if len(meta) > 0 {
		c.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{mesh.MetadataNamespace: {Fields: meta}}}
	}

	th := &cluster.CircuitBreakers_Thresholds{
		Priority:           core.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(orDefault(pol.MaxConnections, mesh.DefaultMaxConnections)),
		MaxPendingRequests: wrapperspb.UInt32(orDefault(pol.MaxPendingRequests, mesh.DefaultMaxPendingRequests)),
		MaxRequests:        wrapperspb.UInt32(orDefault(pol.MaxRequests, mesh.DefaultMaxRequests)),
	}
	if pol.MaxRetries != nil {
		th.MaxRetries = wrapperspb.UInt32(*pol.MaxRetries)
	} else {
		budget := &cluster.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: mesh.DefaultRetryBudgetPercent},
			MinRetryConcurrency: wrapperspb.UInt32(mesh.DefaultRetryBudgetMinConcurrency),
		}
		if rb := pol.RetryBudget; rb != nil {
			budget.BudgetPercent.Value = float64(rb.Percent)
			budget.MinRetryConcurrency = wrapperspb.UInt32(orDefault(rb.MinRetryConcurrency, mesh.DefaultRetryBudgetMinConcurrency))
		}
		th.RetryBudget = budget
	}
	c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{th}}

	var od model.Outlier
	if pol.Outlier != nil {
		od = *pol.Outlier
	}
	o := &cluster.OutlierDetection{
		Interval:             durationpb.New(durOrDefault(od.Interval, mesh.DefaultOutlierInterval)),
		BaseEjectionTime:     durationpb.New(durOrDefault(od.BaseEjectionTime, mesh.DefaultOutlierBaseEjectionTime)),
		MaxEjectionTime:      durationpb.New(mesh.DefaultOutlierMaxEjectionTime),
		MaxEjectionPercent:   wrapperspb.UInt32(orDefault(od.MaxEjectionPercent, mesh.DefaultOutlierMaxEjectionPercent)),
		EnforcingSuccessRate: wrapperspb.UInt32(0),
	}
	if n := orDefault(od.Consecutive5xx, mesh.DefaultOutlierConsecutive5xx); n > 0 {
		o.Consecutive_5Xx = wrapperspb.UInt32(n)
		o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
	} else {
		o.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
	}
	if pct := orDefault(od.FailurePercentage, 0); pct > 0 {
		o.FailurePercentageThreshold = wrapperspb.UInt32(pct)
		o.FailurePercentageRequestVolume = wrapperspb.UInt32(orDefault(od.MinRequests, mesh.DefaultOutlierFailurePctMinVolume))
		o.FailurePercentageMinimumHosts = wrapperspb.UInt32(1)
		o.EnforcingFailurePercentage = wrapperspb.UInt32(100)
	} else {
		o.EnforcingFailurePercentage = wrapperspb.UInt32(0)
	}
	c.OutlierDetection = o
}

func orDefault(v *uint32, def uint32) uint32 {
	if v == nil {
		return def
	}
	return *v
}

func durOrDefault(v *time.Duration, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	return *v
}
