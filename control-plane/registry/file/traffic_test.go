package file

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/control-plane/model"
)

// trafficBase is two Services (payment with ports 8080 and 9090 UDP,
// payment-v2 with 8080) and their WorkloadEntry: lines 1-35.
const trafficBase = `apiVersion: v1
kind: Service
metadata:
  name: payment
  namespace: shop
spec:
  selector:
    app: payment
  ports:
  - name: http
    port: 8080
  - name: dns
    port: 9090
    protocol: UDP
---
apiVersion: v1
kind: Service
metadata:
  name: payment-v2
  namespace: shop
spec:
  selector:
    app: payment
  ports:
  - port: 8080
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: payment-1
  namespace: shop
  labels:
    app: payment
spec:
  address: 127.0.0.2
---
`

// routeDoc starts on line 37 of trafficBase + routeDoc.
const routeDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: canary
  namespace: shop
spec:
  parentRefs:
  - kind: Service
    name: payment
    port: 8080
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /api
      headers:
      - name: X-Version
        value: "2"
      queryParams:
      - name: debug
        type: RegularExpression
        value: "^(1|true)$"
      method: GET
    timeouts:
      request: 10s
      backendRequest: 2s
    retry:
      attempts: 3
      codes: [503]
      backoff: 100ms
    backendRefs:
    - name: payment
      port: 8080
      weight: 90
    - name: payment-v2
      port: 8080
      weight: 10
`

// policyDoc starts on line 37 of trafficBase + policyDoc.
const policyDoc = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: payment
  namespace: shop
spec:
  targetRef:
    name: payment
  loadBalancer:
    algorithm: RingHash
    consistentHash:
      header: X-User
  retryBudget:
    percent: 30
  retry:
    attempts: 2
    retryOn: [5xx]
    backoffBase: 20ms
  timeout: 4s
`

func ptr[T any](v T) *T { return &v }

func TestParseTraffic(t *testing.T) {
	st, err := Parse("mesh.yaml", []byte(trafficBase+routeDoc+"---\n"+policyDoc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantRoutes := []model.HTTPRoute{{
		Name: "canary", Namespace: "shop",
		Parents: []model.ParentRef{{Namespace: "shop", Name: "payment", Port: 8080}},
		Rules: []model.RouteRule{{
			Matches: []model.RouteMatch{{
				Path:    model.PathMatch{Type: model.PathPrefix, Value: "/api"},
				Headers: []model.StringMatch{{Name: "x-version", Value: "2"}},
				Query:   []model.StringMatch{{Name: "debug", Value: "^(1|true)$", Regex: true}},
				Method:  "GET",
			}},
			Backends: []model.Backend{
				{Namespace: "shop", Name: "payment", Port: 8080, Weight: 90},
				{Namespace: "shop", Name: "payment-v2", Port: 8080, Weight: 10},
			},
			Timeout:        ptr(10 * time.Second),
			BackendTimeout: ptr(2 * time.Second),
			Retry:          &model.RouteRetry{Attempts: ptr(uint32(3)), Codes: []uint32{503}, Backoff: ptr(100 * time.Millisecond)},
		}},
	}}
	if diff := cmp.Diff(wantRoutes, st.Routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	wantPolicies := []model.TrafficPolicy{{
		Name: "payment", Namespace: "shop", Service: "payment",
		LB:          model.LBRingHash,
		Hash:        &model.HashKey{Header: "x-user"},
		RetryBudget: &model.RetryBudget{Percent: 30},
		Retry:       &model.RetryPolicy{Attempts: 2, On: []string{"5xx"}, BackoffBase: ptr(20 * time.Millisecond)},
		Timeout:     ptr(4 * time.Second),
	}}
	if diff := cmp.Diff(wantPolicies, st.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	if got := st.RoutesFor("shop", "payment", 8080); len(got) != 1 {
		t.Errorf("RoutesFor(payment, 8080) = %d routes, want 1", len(got))
	}
	if got := st.RoutesFor("shop", "payment-v2", 8080); len(got) != 0 {
		t.Errorf("RoutesFor(payment-v2, 8080) = %d routes, want 0", len(got))
	}
	if _, ok := st.Policy("shop", "payment"); !ok {
		t.Error("Policy(shop, payment) not found")
	}
}

func TestParseTrafficDefaults(t *testing.T) {
	// No matches: one PathPrefix "/" match; no weight: weight 1.
	doc := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  namespace: shop\nspec:\n  parentRefs:\n  - kind: Service\n    name: payment\n  rules:\n  - backendRefs:\n    - name: payment-v2\n      port: 8080\n"
	st, err := Parse("mesh.yaml", []byte(trafficBase+doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := model.RouteRule{
		Matches:  []model.RouteMatch{{Path: model.PathMatch{Type: model.PathPrefix, Value: "/"}}},
		Backends: []model.Backend{{Namespace: "shop", Name: "payment-v2", Port: 8080, Weight: 1}},
	}
	if diff := cmp.Diff([]model.RouteRule{want}, st.Routes[0].Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if p := st.Routes[0].Parents[0]; p.Port != 0 {
		t.Errorf("parent port = %d, want 0 (every port)", p.Port)
	}
}

func TestParseTrafficErrors(t *testing.T) {
	route := func(old, repl string) string {
		if !strings.Contains(routeDoc, old) {
			panic("routeDoc has no " + old)
		}
		return trafficBase + strings.Replace(routeDoc, old, repl, 1)
	}
	policy := func(old, repl string) string {
		if !strings.Contains(policyDoc, old) {
			panic("policyDoc has no " + old)
		}
		return trafficBase + strings.Replace(policyDoc, old, repl, 1)
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{
			name: "backendRef to unknown service",
			data: route("- name: payment-v2\n", "- name: payment-v3\n"),
			want: "mesh.yaml:71: HTTPRoute shop/canary: spec.rules[0].backendRefs[1].name: no Service shop/payment-v3 in the file",
		},
		{
			name: "backendRef to unknown port",
			data: route("      port: 8080\n      weight: 10", "      port: 8081\n      weight: 10"),
			want: "mesh.yaml:72: HTTPRoute shop/canary: spec.rules[0].backendRefs[1].port: Service shop/payment-v2 has no TCP port 8081",
		},
		{
			name: "backendRef to a UDP port",
			data: route("      port: 8080\n      weight: 90", "      port: 9090\n      weight: 90"),
			want: "spec.rules[0].backendRefs[0].port: Service shop/payment has no TCP port 9090",
		},
		{
			name: "backendRef without port",
			data: route("      port: 8080\n      weight: 10", "      weight: 10"),
			want: "mesh.yaml:71: HTTPRoute shop/canary: spec.rules[0].backendRefs[1].port: required for a Service backend",
		},
		{
			name: "backendRef in another namespace",
			data: route("- name: payment-v2\n", "- name: payment-v2\n      namespace: other\n"),
			want: "spec.rules[0].backendRefs[1].namespace: backend in namespace other: cross-namespace backends need a ReferenceGrant",
		},
		{
			name: "parentRef to unknown service",
			data: route("    name: payment\n    port: 8080\n", "    name: billing\n"),
			want: "mesh.yaml:45: HTTPRoute shop/canary: spec.parentRefs[0].name: no Service shop/billing in the file",
		},
		{
			name: "parentRef to unknown port",
			data: route("    port: 8080\n  rules", "    port: 8443\n  rules"),
			want: "mesh.yaml:46: HTTPRoute shop/canary: spec.parentRefs[0].port: Service shop/payment has no TCP port 8443",
		},
		{
			name: "parentRef to a Gateway",
			data: route("  - kind: Service\n", "  - kind: Gateway\n    group: gateway.networking.k8s.io\n"),
			want: `mesh.yaml:44: HTTPRoute shop/canary: spec.parentRefs[0].kind: parent kind "Gateway" is not supported`,
		},
		{
			name: "no parentRefs",
			data: route("  parentRefs:\n  - kind: Service\n    name: payment\n    port: 8080\n", ""),
			want: "HTTPRoute shop/canary: spec.parentRefs: required",
		},
		{
			name: "weights all zero",
			data: strings.Replace(route("weight: 90", "weight: 0"), "weight: 10", "weight: 0", 1),
			want: "mesh.yaml:67: HTTPRoute shop/canary: spec.rules[0].backendRefs: every weight is 0",
		},
		{
			name: "negative weight",
			data: route("weight: 10", "weight: -1"),
			want: "spec.rules[0].backendRefs[1].weight: weight -1 is not in 0-1000000",
		},
		{
			name: "no backendRefs",
			data: trafficBase + routeDoc[:strings.Index(routeDoc, "    backendRefs:")],
			want: "spec.rules[0].backendRefs: required: at least one backend Service",
		},
		{
			name: "bad request timeout",
			data: route("request: 10s", "request: 10 seconds"),
			want: `mesh.yaml:61: HTTPRoute shop/canary: spec.rules[0].timeouts.request: "10 seconds" is not a Gateway API duration`,
		},
		{
			name: "go duration that Gateway API does not allow",
			data: route("request: 10s", "request: 1.5s"),
			want: `spec.rules[0].timeouts.request: "1.5s" is not a Gateway API duration`,
		},
		{
			name: "backendRequest longer than request",
			data: route("backendRequest: 2s", "backendRequest: 20s"),
			want: "mesh.yaml:62: HTTPRoute shop/canary: spec.rules[0].timeouts.backendRequest: 20s is longer than timeouts.request 10s",
		},
		{
			name: "retry code below 400",
			data: route("codes: [503]", "codes: [503, 302]"),
			want: "mesh.yaml:65: HTTPRoute shop/canary: spec.rules[0].retry.codes[1]: status 302 is not in 400-599",
		},
		{
			name: "retry code above 599",
			data: route("codes: [503]", "codes: [600]"),
			want: "spec.rules[0].retry.codes[0]: status 600 is not in 400-599",
		},
		{
			name: "retry attempts too many",
			data: route("attempts: 3", "attempts: 11"),
			want: "mesh.yaml:64: HTTPRoute shop/canary: spec.rules[0].retry.attempts: 11 is not in 1-10",
		},
		{
			name: "bad backoff",
			data: route("backoff: 100ms", "backoff: soon"),
			want: `spec.rules[0].retry.backoff: "soon" is not a Gateway API duration`,
		},
		{
			name: "bad path regex",
			data: route("        type: PathPrefix\n        value: /api\n", "        type: RegularExpression\n        value: /api/(\n"),
			want: "mesh.yaml:51: HTTPRoute shop/canary: spec.rules[0].matches[0].path.value: invalid RE2 regular expression",
		},
		{
			name: "prefix without slash",
			data: route("value: /api\n", "value: api\n"),
			want: `spec.rules[0].matches[0].path.value: "api" does not start with /`,
		},
		{
			name: "bad method",
			data: route("method: GET", "method: FETCH"),
			want: `mesh.yaml:59: HTTPRoute shop/canary: spec.rules[0].matches[0].method: "FETCH" is not one of GET`,
		},
		{
			name: "filters unsupported",
			data: route("    timeouts:\n", "    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set:\n        - name: x\n          value: z\n    timeouts:\n"),
			want: "spec.rules[0].filters: filters are not supported yet",
		},
		{
			name: "unknown field in route",
			data: route("    retry:\n", "    retries:\n"),
			want: "mesh.yaml:63: HTTPRoute shop/canary: spec.rules[0].retries: unknown field",
		},
		{
			name: "policy for unknown service",
			data: policy("    name: payment\n  loadBalancer", "    name: billing\n  loadBalancer"),
			want: "mesh.yaml:44: TrafficPolicy shop/payment: spec.targetRef.name: no Service shop/billing in the file",
		},
		{
			name: "two policies for one service",
			data: trafficBase + policyDoc + "---\n" + strings.Replace(policyDoc, "  name: payment\n  namespace", "  name: payment-2\n  namespace", 1),
			want: "mesh.yaml:64: TrafficPolicy shop/payment-2: spec.targetRef.name: Service shop/payment already has TrafficPolicy payment (line 40)",
		},
		{
			name: "RingHash without consistentHash",
			data: policy("    consistentHash:\n      header: X-User\n", ""),
			want: "mesh.yaml:45: TrafficPolicy shop/payment: spec.loadBalancer.consistentHash: required when algorithm is RingHash",
		},
		{
			name: "consistentHash with two keys",
			data: policy("      header: X-User\n", "      header: X-User\n      sourceIP: true\n"),
			want: "spec.loadBalancer.consistentHash: set exactly one of header, cookie, sourceIP",
		},
		{
			name: "consistentHash without RingHash",
			data: policy("algorithm: RingHash", "algorithm: LeastRequest"),
			want: "spec.loadBalancer.consistentHash: only used with algorithm RingHash",
		},
		{
			name: "unknown algorithm",
			data: policy("algorithm: RingHash", "algorithm: Fastest"),
			want: `mesh.yaml:46: TrafficPolicy shop/payment: spec.loadBalancer.algorithm: "Fastest" is not RoundRobin`,
		},
		{
			name: "bad policy timeout",
			data: policy("timeout: 4s", "timeout: 4 s"),
			want: `mesh.yaml:55: TrafficPolicy shop/payment: spec.timeout: "4 s" is not a duration`,
		},
		{
			name: "zero backoff",
			data: policy("backoffBase: 20ms", "backoffBase: 0s"),
			want: "mesh.yaml:54: TrafficPolicy shop/payment: spec.retry.backoffBase: must be more than 0",
		},
		{
			name: "policy retry code",
			data: policy("    retryOn: [5xx]\n", "    retryOn: [5xx]\n    codes: [200]\n"),
			want: "spec.retry.codes[0]: status 200 is not in 400-599",
		},
		{
			name: "unknown retry condition",
			data: policy("retryOn: [5xx]", "retryOn: [5xx, sometimes]"),
			want: `mesh.yaml:53: TrafficPolicy shop/payment: spec.retry.retryOn[1]: "sometimes" is not one of connect-failure`,
		},
		{
			name: "retriable-status-codes without codes",
			data: policy("retryOn: [5xx]", "retryOn: [retriable-status-codes]"),
			want: "spec.retry.codes: required when retryOn has retriable-status-codes",
		},
		{
			name: "maxRetries and retryBudget",
			data: policy("  retryBudget:\n", "  connectionPool:\n    maxRetries: 3\n  retryBudget:\n"),
			want: "spec.connectionPool.maxRetries: set either connectionPool.maxRetries or retryBudget, not both",
		},
		{
			name: "budget over 100%",
			data: policy("percent: 30", "percent: 130"),
			want: "mesh.yaml:50: TrafficPolicy shop/payment: spec.retryBudget.percent: 130 is not in 0-100",
		},
		{
			name: "outlier percentage over 100",
			data: policy("  retryBudget:\n", "  outlierDetection:\n    maxEjectionPercent: 101\n  retryBudget:\n"),
			want: "spec.outlierDetection.maxEjectionPercent: 101 is not in 0-100",
		},
		{
			name: "bad outlier interval",
			data: policy("  retryBudget:\n", "  outlierDetection:\n    interval: often\n  retryBudget:\n"),
			want: `spec.outlierDetection.interval: "often" is not a duration`,
		},
		{
			name: "zero maxRequests",
			data: policy("  retryBudget:\n", "  connectionPool:\n    maxRequests: 0\n  retryBudget:\n"),
			want: "spec.connectionPool.maxRequests: must be at least 1",
		},
		{
			name: "target not a Service",
			data: policy("    name: payment\n  loadBalancer", "    kind: Deployment\n    name: payment\n  loadBalancer"),
			want: "spec.targetRef.kind: target /Deployment is not supported (Service, or weft.dev/ExternalService)",
		},
		{
			name: "on is read as true",
			data: policy("retryOn: [5xx]", "on: [5xx]"),
			want: "spec.retry.true: unknown field",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error:\n%v\nwant one containing %q", err, tc.want)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.File != "mesh.yaml" || fe.Line == 0 {
				t.Fatalf("errors.As(*Error) = %+v, want file and line", fe)
			}
		})
	}
}
