package translate

import (
	"slices"
	"testing"
	"time"

	"github.com/weftmesh/weft/control-plane/model"
)

func TestCompareMatchesPrecedence(t *testing.T) {
	// Each route has one rule with one match; want is their order.
	mk := func(name string, m model.RouteMatch) model.HTTPRoute {
		return model.HTTPRoute{Name: name, Namespace: "ns", Rules: []model.RouteRule{{Matches: []model.RouteMatch{m}}}}
	}
	prefix := func(v string) model.PathMatch { return model.PathMatch{Type: model.PathPrefix, Value: v} }
	routes := []model.HTTPRoute{
		mk("catch-all", model.RouteMatch{Path: prefix("/")}),
		mk("prefix-short", model.RouteMatch{Path: prefix("/a")}),
		mk("prefix-long-trailing-slash", model.RouteMatch{Path: prefix("/a/b/")}),
		mk("b-prefix-long", model.RouteMatch{Path: prefix("/a/bc")}),
		mk("exact", model.RouteMatch{Path: model.PathMatch{Type: model.PathExact, Value: "/a"}}),
		mk("regex", model.RouteMatch{Path: model.PathMatch{Type: model.PathRegex, Value: "/a/.*"}}),
		mk("prefix-method", model.RouteMatch{Path: prefix("/a"), Method: "GET"}),
		mk("prefix-header", model.RouteMatch{Path: prefix("/a"), Headers: []model.StringMatch{{Name: "x", Value: "1"}}}),
		mk("prefix-2-headers", model.RouteMatch{Path: prefix("/a"), Headers: []model.StringMatch{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}}}),
		mk("prefix-query", model.RouteMatch{Path: prefix("/a"), Query: []model.StringMatch{{Name: "q", Value: "1"}}}),
		mk("a-prefix-query", model.RouteMatch{Path: prefix("/a"), Query: []model.StringMatch{{Name: "q", Value: "1"}}}),
	}
	want := []string{
		"exact", "regex", "b-prefix-long", "prefix-long-trailing-slash",
		"prefix-method", "prefix-2-headers", "prefix-header", "a-prefix-query", "prefix-query", "prefix-short", "catch-all",
	}
	var ranked []rankedMatch
	for i := range routes {
		ranked = append(ranked, rankedMatch{route: &routes[i]})
	}
	slices.SortStableFunc(ranked, compareMatches)
	var got []string
	for _, r := range ranked {
		got = append(got, r.route.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
}

func TestRuleRetryOverlay(t *testing.T) {
	d := func(s string) *time.Duration { v, _ := time.ParseDuration(s); return &v }
	three := uint32(3)
	tests := []struct {
		name string
		pol  model.TrafficPolicy
		rule model.RouteRule
		want retrySettings
	}{
		{
			name: "mesh defaults",
			want: retrySettings{on: []string{"connect-failure", "refused-stream", "reset"}, attempts: 2, base: 25 * time.Millisecond, max: 250 * time.Millisecond},
		},
		{
			name: "route over defaults",
			rule: model.RouteRule{BackendTimeout: d("2s"), Retry: &model.RouteRetry{Attempts: &three, Codes: []uint32{503}, Backoff: d("100ms")}},
			want: retrySettings{
				on: []string{"connect-failure", "refused-stream", "reset", "retriable-status-codes"}, attempts: 3, codes: []uint32{503},
				perTry: 2 * time.Second, base: 100 * time.Millisecond, max: time.Second,
			},
		},
		{
			name: "policy codes imply retriable-status-codes",
			pol:  model.TrafficPolicy{Retry: &model.RetryPolicy{Attempts: 1, On: []string{"5xx"}, Codes: []uint32{429}, NonIdempotent: true}},
			want: retrySettings{on: []string{"5xx", "retriable-status-codes"}, attempts: 1, codes: []uint32{429}, base: 25 * time.Millisecond, max: 250 * time.Millisecond, nonIdempotent: true},
		},
		{
			name: "zero backendRequest means no per-try timeout",
			pol:  model.TrafficPolicy{Retry: &model.RetryPolicy{Attempts: 1, PerTryTimeout: d("1s")}},
			rule: model.RouteRule{BackendTimeout: d("0s")},
			want: retrySettings{on: []string{"connect-failure", "refused-stream", "reset"}, attempts: 1, base: 25 * time.Millisecond, max: 250 * time.Millisecond},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ruleRetry(defaultRetry(tc.pol), tc.rule)
			if !slices.Equal(got.on, tc.want.on) || !slices.Equal(got.codes, tc.want.codes) ||
				got.attempts != tc.want.attempts || got.perTry != tc.want.perTry || got.base != tc.want.base ||
				got.max != tc.want.max || got.nonIdempotent != tc.want.nonIdempotent {
				t.Fatalf("ruleRetry = %+v, want %+v", got, tc.want)
			}
		})
	}
}
