package file

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// HTTPRoute (GAMMA) and TrafficPolicy: validateHTTPRoute and
// validateTrafficPolicy look at one object; buildTraffic checks references
// against the Services of the file and converts to the model.

const (
	maxRetryAttempts = 10
	maxWeight        = 1_000_000
)

// gatewayDuration is GEP-2257's Duration format.
var gatewayDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// weftDuration is v1alpha1.Duration's pattern.
var weftDuration = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)

// httpToken is an RFC 9110 token (header and query parameter names).
var httpToken = regexp.MustCompile("^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")

func (p *parser) gatewayDuration(d *document, f string, v *gwv1.Duration) *time.Duration {
	if v == nil {
		return nil
	}
	if !gatewayDuration.MatchString(string(*v)) {
		p.errorf(d, f, "%q is not a Gateway API duration (e.g. 10s, 1m30s, 250ms)", *v)
		return nil
	}
	dur, err := time.ParseDuration(string(*v))
	if err != nil {
		p.errorf(d, f, "%q is not a duration: %v", *v, err)
		return nil
	}
	return &dur
}

// weftDurationOf parses a v1alpha1.Duration; positive says 0 is refused.
func (p *parser) weftDurationOf(d *document, f string, v *v1alpha1.Duration, positive bool) *time.Duration {
	if v == nil {
		return nil
	}
	if !weftDuration.MatchString(string(*v)) {
		p.errorf(d, f, "%q is not a duration (e.g. 250ms, 5s, 1m)", *v)
		return nil
	}
	dur, err := time.ParseDuration(string(*v))
	if err != nil {
		p.errorf(d, f, "%q is not a duration: %v", *v, err)
		return nil
	}
	if positive && dur <= 0 {
		p.errorf(d, f, "must be more than 0")
		return nil
	}
	return &dur
}

func isServiceRef(group *gwv1.Group, kind *gwv1.Kind) bool {
	g := ""
	if group != nil {
		g = string(*group)
	}
	k := "Service"
	if kind != nil {
		k = string(*kind)
	}
	return (g == "" || g == "core") && k == "Service"
}

func validateHTTPRoute(p *parser, d *document, r *gwv1.HTTPRoute) {
	spec := &r.Spec
	if len(spec.ParentRefs) == 0 {
		p.errorf(d, "spec.parentRefs", "required: a mesh HTTPRoute names the Service it routes for (kind: Service)")
	}
	for i, pr := range spec.ParentRefs {
		f := fmt.Sprintf("spec.parentRefs[%d]", i)
		kind := "Service"
		if pr.Kind != nil {
			kind = string(*pr.Kind)
		}
		if !isServiceRef(pr.Group, pr.Kind) {
			p.errorf(d, f+".kind", "parent kind %q is not supported: Weft routes for Services (GAMMA, kind: Service)", kind)
		}
		if pr.Name == "" {
			p.errorf(d, f+".name", "required")
		}
		if pr.SectionName != nil {
			p.errorf(d, f+".sectionName", "not supported for a Service parent: use port")
		}
		if pr.Port != nil {
			if msg := checkPort(*pr.Port); msg != "" {
				p.errorf(d, f+".port", "%s", msg)
			}
		}
	}
	if len(spec.Hostnames) > 0 {
		p.errorf(d, "spec.hostnames", "not supported for a Service parent: the Service's names are its hosts")
	}
	if len(spec.Rules) == 0 {
		p.errorf(d, "spec.rules", "required: at least one rule")
	}
	for i := range spec.Rules {
		p.validateRule(d, fmt.Sprintf("spec.rules[%d]", i), &spec.Rules[i])
	}
}

func (p *parser) validateRule(d *document, f string, rule *gwv1.HTTPRouteRule) {
	for j := range rule.Matches {
		p.validateMatch(d, fmt.Sprintf("%s.matches[%d]", f, j), &rule.Matches[j])
	}
	if len(rule.Filters) > 0 {
		p.errorf(d, f+".filters", "filters are not supported yet")
	}
	if rule.SessionPersistence != nil {
		p.errorf(d, f+".sessionPersistence", "not supported: use a TrafficPolicy with loadBalancer.algorithm RingHash")
	}
	if len(rule.BackendRefs) == 0 {
		p.errorf(d, f+".backendRefs", "required: at least one backend Service")
	}
	var total int64
	for j, br := range rule.BackendRefs {
		bf := fmt.Sprintf("%s.backendRefs[%d]", f, j)
		if !isServiceRef(br.Group, br.Kind) {
			kind := ""
			if br.Kind != nil {
				kind = string(*br.Kind)
			}
			p.errorf(d, bf+".kind", "backend kind %q is not supported (Service)", kind)
		}
		if br.Name == "" {
			p.errorf(d, bf+".name", "required")
		}
		if br.Port == nil {
			p.errorf(d, bf+".port", "required for a Service backend")
		} else if msg := checkPort(*br.Port); msg != "" {
			p.errorf(d, bf+".port", "%s", msg)
		}
		w := int64(1)
		if br.Weight != nil {
			w = int64(*br.Weight)
			if w < 0 || w > maxWeight {
				p.errorf(d, bf+".weight", "weight %d is not in 0-%d", w, maxWeight)
			}
		}
		total += w
		if len(br.Filters) > 0 {
			p.errorf(d, bf+".filters", "filters are not supported yet")
		}
	}
	if len(rule.BackendRefs) > 0 && total == 0 {
		p.errorf(d, f+".backendRefs", "every weight is 0: no request could be routed")
	}
	if t := rule.Timeouts; t != nil {
		req := p.gatewayDuration(d, f+".timeouts.request", t.Request)
		be := p.gatewayDuration(d, f+".timeouts.backendRequest", t.BackendRequest)
		if req != nil && be != nil && *req != 0 && *be > *req {
			p.errorf(d, f+".timeouts.backendRequest", "%s is longer than timeouts.request %s", *be, *req)
		}
	}
	if rt := rule.Retry; rt != nil {
		if rt.Attempts != nil && (*rt.Attempts < 1 || *rt.Attempts > maxRetryAttempts) {
			p.errorf(d, f+".retry.attempts", "%d is not in 1-%d", *rt.Attempts, maxRetryAttempts)
		}
		for j, c := range rt.Codes {
			if c < 400 || c > 599 {
				p.errorf(d, fmt.Sprintf("%s.retry.codes[%d]", f, j), "status %d is not in 400-599", c)
			}
		}
		if b := p.gatewayDuration(d, f+".retry.backoff", rt.Backoff); b != nil && *b == 0 {
			p.errorf(d, f+".retry.backoff", "must be more than 0")
		}
	}
}

func (p *parser) validateMatch(d *document, f string, m *gwv1.HTTPRouteMatch) {
	if pm := m.Path; pm != nil {
		typ := gwv1.PathMatchPathPrefix
		if pm.Type != nil {
			typ = *pm.Type
		}
		value := "/"
		if pm.Value != nil {
			value = *pm.Value
		}
		switch typ {
		case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
			switch {
			case !strings.HasPrefix(value, "/"):
				p.errorf(d, f+".path.value", "%q does not start with /", value)
			case strings.ContainsAny(value, "?#"):
				p.errorf(d, f+".path.value", "%q holds a query or fragment", value)
			case strings.Contains(value, "//"):
				p.errorf(d, f+".path.value", "%q holds an empty segment", value)
			}
		case gwv1.PathMatchRegularExpression:
			p.checkRegex(d, f+".path.value", value)
		default:
			p.errorf(d, f+".path.type", "path match type %q is not Exact, PathPrefix or RegularExpression", typ)
		}
	}
	seen := map[string]bool{}
	for j, h := range m.Headers {
		hf := fmt.Sprintf("%s.headers[%d]", f, j)
		name := strings.ToLower(string(h.Name))
		if !httpToken.MatchString(name) {
			p.errorf(d, hf+".name", "%q is not a header name", h.Name)
		} else if seen[name] {
			p.errorf(d, hf+".name", "header %q is matched twice", h.Name)
		}
		seen[name] = true
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			p.checkRegex(d, hf+".value", h.Value)
		} else if h.Type != nil && *h.Type != gwv1.HeaderMatchExact {
			p.errorf(d, hf+".type", "header match type %q is not Exact or RegularExpression", *h.Type)
		}
	}
	seenQ := map[string]bool{}
	for j, q := range m.QueryParams {
		qf := fmt.Sprintf("%s.queryParams[%d]", f, j)
		if !httpToken.MatchString(string(q.Name)) {
			p.errorf(d, qf+".name", "%q is not a query parameter name", q.Name)
		} else if seenQ[string(q.Name)] {
			p.errorf(d, qf+".name", "query parameter %q is matched twice", q.Name)
		}
		seenQ[string(q.Name)] = true
		if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
			p.checkRegex(d, qf+".value", q.Value)
		} else if q.Type != nil && *q.Type != gwv1.QueryParamMatchExact {
			p.errorf(d, qf+".type", "query match type %q is not Exact or RegularExpression", *q.Type)
		}
	}
	if m.Method != nil && !slices.Contains(httpMethods, string(*m.Method)) {
		p.errorf(d, f+".method", "%q is not one of %s", *m.Method, strings.Join(httpMethods, ", "))
	}
}

var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch,
}

func (p *parser) checkRegex(d *document, f, re string) {
	if re == "" {
		p.errorf(d, f, "required")
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		p.errorf(d, f, "invalid RE2 regular expression: %v", err)
	}
}

var retryOnConditions = []string{
	mesh.RetryOnConnectFailure, mesh.RetryOnRefusedStream, mesh.RetryOnReset,
	mesh.RetryOn5xx, mesh.RetryOnGatewayError, mesh.RetryOnRetriableStatusCodes,
}

func validateTrafficPolicy(p *parser, d *document, tp *v1alpha1.TrafficPolicy) {
	spec := &tp.Spec
	tr := spec.TargetRef
	external := tr.Kind == kindExternalService
	switch {
	case external && tr.Group == v1alpha1.GroupName:
	case !external && (tr.Group == "" || tr.Group == "core") && (tr.Kind == "" || tr.Kind == "Service"):
	default:
		p.errorf(d, "spec.targetRef.kind", "target %s/%s is not supported (Service, or weft.dev/ExternalService)", tr.Group, tr.Kind)
	}
	switch {
	case tr.Name == "":
		p.errorf(d, "spec.targetRef.name", "required")
	case external:
		if msgs := validation.IsDNS1123Subdomain(tr.Name); len(msgs) > 0 {
			p.errorf(d, "spec.targetRef.name", "invalid ExternalService name %q: %s", tr.Name, strings.Join(msgs, "; "))
		}
	default:
		if msgs := validation.IsDNS1035Label(tr.Name); len(msgs) > 0 {
			p.errorf(d, "spec.targetRef.name", "invalid Service name %q: %s", tr.Name, strings.Join(msgs, "; "))
		}
	}
	if lb := spec.LoadBalancer; lb != nil {
		switch lb.Algorithm {
		case "", v1alpha1.LBRoundRobin, v1alpha1.LBLeastRequest, v1alpha1.LBRandom, v1alpha1.LBLeastLatency:
			if lb.ConsistentHash != nil {
				p.errorf(d, "spec.loadBalancer.consistentHash", "only used with algorithm RingHash")
			}
		case v1alpha1.LBRingHash:
			if lb.ConsistentHash == nil {
				p.errorf(d, "spec.loadBalancer.consistentHash", "required when algorithm is RingHash")
			}
		default:
			p.errorf(d, "spec.loadBalancer.algorithm", "%q is not RoundRobin, LeastRequest, Random, RingHash or LeastLatency", lb.Algorithm)
		}
		if ch := lb.ConsistentHash; ch != nil {
			n := 0
			if ch.Header != "" {
				n++
				if !httpToken.MatchString(ch.Header) {
					p.errorf(d, "spec.loadBalancer.consistentHash.header", "%q is not a header name", ch.Header)
				}
			}
			if ch.Cookie != "" {
				n++
				if !httpToken.MatchString(ch.Cookie) {
					p.errorf(d, "spec.loadBalancer.consistentHash.cookie", "%q is not a cookie name", ch.Cookie)
				}
			}
			if ch.SourceIP {
				n++
			}
			if n != 1 {
				p.errorf(d, "spec.loadBalancer.consistentHash", "set exactly one of header, cookie, sourceIP")
			}
		}
	}
	if cp := spec.ConnectionPool; cp != nil {
		for f, v := range map[string]*uint32{
			"maxConnections": cp.MaxConnections, "maxPendingRequests": cp.MaxPendingRequests, "maxRequests": cp.MaxRequests,
		} {
			if v != nil && *v == 0 {
				p.errorf(d, "spec.connectionPool."+f, "must be at least 1")
			}
		}
		if cp.MaxRetries != nil && spec.RetryBudget != nil {
			p.errorf(d, "spec.connectionPool.maxRetries", "set either connectionPool.maxRetries or retryBudget, not both")
		}
	}
	if od := spec.OutlierDetection; od != nil {
		pct := func(f string, v *uint32) {
			if v != nil && *v > 100 {
				p.errorf(d, "spec.outlierDetection."+f, "%d is not in 0-100", *v)
			}
		}
		pct("failurePercentage", od.FailurePercentage)
		pct("maxEjectionPercent", od.MaxEjectionPercent)
		if od.MinRequests != nil && *od.MinRequests == 0 {
			p.errorf(d, "spec.outlierDetection.minRequests", "must be at least 1")
		}
		p.weftDurationOf(d, "spec.outlierDetection.interval", od.Interval, true)
		p.weftDurationOf(d, "spec.outlierDetection.baseEjectionTime", od.BaseEjectionTime, true)
	}
	if rb := spec.RetryBudget; rb != nil && rb.Percent > 100 {
		p.errorf(d, "spec.retryBudget.percent", "%d is not in 0-100", rb.Percent)
	}
	if rp := spec.Retry; rp != nil {
		if rp.Attempts > maxRetryAttempts {
			p.errorf(d, "spec.retry.attempts", "%d is not in 0-%d", rp.Attempts, maxRetryAttempts)
		}
		for j, on := range rp.RetryOn {
			if !slices.Contains(retryOnConditions, on) {
				p.errorf(d, fmt.Sprintf("spec.retry.retryOn[%d]", j), "%q is not one of %s", on, strings.Join(retryOnConditions, ", "))
			}
		}
		for j, c := range rp.Codes {
			if c < 400 || c > 599 {
				p.errorf(d, fmt.Sprintf("spec.retry.codes[%d]", j), "status %d is not in 400-599", c)
			}
		}
		if slices.Contains(rp.RetryOn, mesh.RetryOnRetriableStatusCodes) && len(rp.Codes) == 0 {
			p.errorf(d, "spec.retry.codes", "required when retryOn has %s", mesh.RetryOnRetriableStatusCodes)
		}
		p.weftDurationOf(d, "spec.retry.perTryTimeout", rp.PerTryTimeout, true)
		base := p.weftDurationOf(d, "spec.retry.backoffBase", rp.BackoffBase, true)
		maxB := p.weftDurationOf(d, "spec.retry.backoffMax", rp.BackoffMax, true)
		if base != nil && maxB != nil && *maxB < *base {
			p.errorf(d, "spec.retry.backoffMax", "%s is less than backoffBase %s", *maxB, *base)
		}
	}
	p.weftDurationOf(d, "spec.timeout", spec.Timeout, false)
}

// buildTraffic checks the routes' and policies' references against the
// services and converts them. services holds the model services by
// "ns/name".
func (p *parser) buildTraffic(services map[string]*model.Service) ([]model.HTTPRoute, []model.TrafficPolicy) {
	o := &p.objs
	var routes []model.HTTPRoute
	for _, r := range o.httpRoutes {
		if mr, ok := p.routeOf(r, services); ok {
			routes = append(routes, mr)
		}
	}
	var policies []model.TrafficPolicy
	first := map[string]decoded[v1alpha1.TrafficPolicy]{}
	externalNames := map[string]bool{}
	for _, s := range o.services {
		if s.obj.Spec.Type == corev1.ServiceTypeExternalName {
			externalNames[s.obj.Namespace+"/"+s.obj.Name] = true
		}
	}
	externalServices := map[string]bool{}
	for _, es := range o.externalServices {
		externalServices[es.obj.Namespace+"/"+es.obj.Name] = true
	}
	p.egressPolicies = map[string]model.TrafficPolicy{}
	for _, tp := range o.trafficPolicies {
		key := tp.obj.Namespace + "/" + tp.obj.Spec.TargetRef.Name
		kind, external := "Service", false
		switch {
		case tp.obj.Spec.TargetRef.Kind == kindExternalService:
			kind, external = kindExternalService, true
			if !externalServices[key] {
				p.errorf(tp.doc, "spec.targetRef.name", "no ExternalService %s in the file", key)
				continue
			}
		case externalNames[key]:
			external = true // the gateway applies it (Egress contract)
		default:
			if _, ok := services[key]; !ok {
				p.errorf(tp.doc, "spec.targetRef.name", "no Service %s in the file", key)
				continue
			}
		}
		if other, dup := first[kind+" "+key]; dup {
			p.errorf(tp.doc, "spec.targetRef.name", "%s %s already has TrafficPolicy %s (line %d)",
				kind, key, other.obj.Name, other.doc.line("metadata.name"))
			continue
		}
		first[kind+" "+key] = tp
		if external {
			p.egressPolicies[kind+" "+key] = p.policyOf(tp)
			continue
		}
		policies = append(policies, p.policyOf(tp))
	}
	return routes, policies
}

// kindExternalService is the kind of a TrafficPolicy's targetRef that names
// an ExternalService.
const kindExternalService = "ExternalService"

func (p *parser) routeOf(r decoded[gwv1.HTTPRoute], services map[string]*model.Service) (model.HTTPRoute, bool) {
	spec := &r.obj.Spec
	ns := r.obj.Namespace
	before := len(p.errs)
	mr := model.HTTPRoute{Name: r.obj.Name, Namespace: ns}
	for i, pr := range spec.ParentRefs {
		f := fmt.Sprintf("spec.parentRefs[%d]", i)
		pns := ns
		if pr.Namespace != nil && *pr.Namespace != "" {
			pns = string(*pr.Namespace)
		}
		svc, ok := services[pns+"/"+string(pr.Name)]
		if !ok {
			p.errorf(r.doc, f+".name", "no Service %s/%s in the file", pns, pr.Name)
			continue
		}
		ref := model.ParentRef{Namespace: pns, Name: string(pr.Name)}
		if pr.Port != nil {
			ref.Port = uint32(*pr.Port)
			if !hasTCPPort(svc, ref.Port) {
				p.errorf(r.doc, f+".port", "Service %s/%s has no TCP port %d", pns, pr.Name, ref.Port)
			}
		}
		mr.Parents = append(mr.Parents, ref)
	}
	for i := range spec.Rules {
		rule := &spec.Rules[i]
		f := fmt.Sprintf("spec.rules[%d]", i)
		var mrule model.RouteRule
		for _, m := range rule.Matches {
			mrule.Matches = append(mrule.Matches, matchOf(m))
		}
		if len(mrule.Matches) == 0 {
			mrule.Matches = []model.RouteMatch{{Path: model.PathMatch{Type: model.PathPrefix, Value: "/"}}}
		}
		for j, br := range rule.BackendRefs {
			bf := fmt.Sprintf("%s.backendRefs[%d]", f, j)
			bns := ns
			if br.Namespace != nil && *br.Namespace != "" {
				bns = string(*br.Namespace)
			}
			if bns != ns {
				p.errorf(r.doc, bf+".namespace", "backend in namespace %s: cross-namespace backends need a ReferenceGrant, which Weft does not support yet", bns)
				continue
			}
			svc, ok := services[bns+"/"+string(br.Name)]
			if !ok {
				p.errorf(r.doc, bf+".name", "no Service %s/%s in the file", bns, br.Name)
				continue
			}
			port := uint32(*br.Port)
			if !hasTCPPort(svc, port) {
				p.errorf(r.doc, bf+".port", "Service %s/%s has no TCP port %d", bns, br.Name, port)
				continue
			}
			w := uint32(1)
			if br.Weight != nil {
				w = uint32(*br.Weight)
			}
			mrule.Backends = append(mrule.Backends, model.Backend{Namespace: bns, Name: string(br.Name), Port: port, Weight: w})
		}
		if t := rule.Timeouts; t != nil {
			mrule.Timeout = p.gatewayDuration(r.doc, f+".timeouts.request", t.Request)
			mrule.BackendTimeout = p.gatewayDuration(r.doc, f+".timeouts.backendRequest", t.BackendRequest)
		}
		if rt := rule.Retry; rt != nil {
			rr := &model.RouteRetry{Backoff: p.gatewayDuration(r.doc, f+".retry.backoff", rt.Backoff)}
			if rt.Attempts != nil {
				a := uint32(*rt.Attempts)
				rr.Attempts = &a
			}
			for _, c := range rt.Codes {
				rr.Codes = append(rr.Codes, uint32(c))
			}
			mrule.Retry = rr
		}
		mr.Rules = append(mr.Rules, mrule)
	}
	return mr, len(p.errs) == before
}

func matchOf(m gwv1.HTTPRouteMatch) model.RouteMatch {
	var out model.RouteMatch
	out.Path = model.PathMatch{Type: model.PathPrefix, Value: "/"}
	if m.Path != nil {
		if m.Path.Type != nil {
			out.Path.Type = model.PathMatchType(*m.Path.Type)
		}
		if m.Path.Value != nil {
			out.Path.Value = *m.Path.Value
		}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, model.StringMatch{
			Name:  strings.ToLower(string(h.Name)),
			Value: h.Value,
			Regex: h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression,
		})
	}
	for _, q := range m.QueryParams {
		out.Query = append(out.Query, model.StringMatch{
			Name:  string(q.Name),
			Value: q.Value,
			Regex: q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression,
		})
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out
}

func hasTCPPort(svc *model.Service, port uint32) bool {
	for _, sp := range svc.Ports {
		if sp.Port == port && sp.Protocol == model.ProtocolTCP {
			return true
		}
	}
	return false
}

// policyOf converts a validated TrafficPolicy (durations already checked).
func (p *parser) policyOf(tp decoded[v1alpha1.TrafficPolicy]) model.TrafficPolicy {
	spec := &tp.obj.Spec
	d := tp.doc
	mp := model.TrafficPolicy{
		Name:      tp.obj.Name,
		Namespace: tp.obj.Namespace,
		Service:   spec.TargetRef.Name,
		LB:        model.LBRoundRobin,
	}
	if lb := spec.LoadBalancer; lb != nil {
		if lb.Algorithm != "" {
			mp.LB = model.LBAlgorithm(lb.Algorithm)
		}
		if ch := lb.ConsistentHash; ch != nil {
			mp.Hash = &model.HashKey{Header: strings.ToLower(ch.Header), Cookie: ch.Cookie, SourceIP: ch.SourceIP}
		}
		mp.LocalityAware = lb.LocalityAware
	}
	if cp := spec.ConnectionPool; cp != nil {
		mp.MaxConnections = cp.MaxConnections
		mp.MaxPendingRequests = cp.MaxPendingRequests
		mp.MaxRequests = cp.MaxRequests
		mp.MaxRetries = cp.MaxRetries
	}
	if od := spec.OutlierDetection; od != nil {
		mp.Outlier = &model.Outlier{
			Consecutive5xx:     od.Consecutive5xx,
			FailurePercentage:  od.FailurePercentage,
			MinRequests:        od.MinRequests,
			Interval:           p.weftDurationOf(d, "spec.outlierDetection.interval", od.Interval, true),
			BaseEjectionTime:   p.weftDurationOf(d, "spec.outlierDetection.baseEjectionTime", od.BaseEjectionTime, true),
			MaxEjectionPercent: od.MaxEjectionPercent,
		}
	}
	if rb := spec.RetryBudget; rb != nil {
		mp.RetryBudget = &model.RetryBudget{Percent: rb.Percent, MinRetryConcurrency: rb.MinRetryConcurrency}
	}
	if rp := spec.Retry; rp != nil {
		mp.Retry = &model.RetryPolicy{
			Attempts:      rp.Attempts,
			On:            slices.Clone(rp.RetryOn),
			Codes:         slices.Clone(rp.Codes),
			PerTryTimeout: p.weftDurationOf(d, "spec.retry.perTryTimeout", rp.PerTryTimeout, true),
			BackoffBase:   p.weftDurationOf(d, "spec.retry.backoffBase", rp.BackoffBase, true),
			BackoffMax:    p.weftDurationOf(d, "spec.retry.backoffMax", rp.BackoffMax, true),
			NonIdempotent: rp.NonIdempotent,
		}
	}
	mp.Timeout = p.weftDurationOf(d, "spec.timeout", spec.Timeout, false)
	return mp
}
