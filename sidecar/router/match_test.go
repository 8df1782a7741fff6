package router

import (
	"math"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestMatchResilienceContract(t *testing.T) {
	re := regexp.MustCompile(`^(?:/v[0-9]+/items)$`)
	tests := []struct {
		name string
		m    Match
		url  string
		meth string
		want bool
	}{
		{"separated prefix exact", Match{Kind: PathSeparatedPrefix, Prefix: "/foo"}, "/foo", "GET", true},
		{"separated prefix slash", Match{Kind: PathSeparatedPrefix, Prefix: "/foo"}, "/foo/", "GET", true},
		{"separated prefix deeper", Match{Kind: PathSeparatedPrefix, Prefix: "/foo"}, "/foo/bar", "GET", true},
		{"separated prefix not foobar", Match{Kind: PathSeparatedPrefix, Prefix: "/foo"}, "/foobar", "GET", false},
		{"regex whole path", Match{Kind: PathRegex, Regex: re}, "/v2/items", "GET", true},
		{"regex not a substring", Match{Kind: PathRegex, Regex: re}, "/v2/items/x", "GET", false},
		{"exact ignores query", Match{Kind: PathExact, Path: "/x"}, "/x?a=1", "GET", true},
		{"method", Match{Prefix: "/", Headers: []HeaderMatch{{Name: ":method", Kind: HeaderExact, Value: "POST"}}}, "/", "POST", true},
		{"method miss", Match{Prefix: "/", Headers: []HeaderMatch{{Name: ":method", Kind: HeaderExact, Value: "POST"}}}, "/", "GET", false},
		{"query exact first value", Match{Prefix: "/", Query: []QueryMatch{{Name: "v", Kind: HeaderExact, Value: "2"}}}, "/?v=2&v=3", "GET", true},
		{"query exact miss", Match{Prefix: "/", Query: []QueryMatch{{Name: "v", Kind: HeaderExact, Value: "3"}}}, "/?v=2&v=3", "GET", false},
		{"query regex", Match{Prefix: "/", Query: []QueryMatch{{Name: "v", Kind: HeaderRegex, Regex: regexp.MustCompile(`^(?:[0-9]+)$`)}}}, "/?v=42", "GET", true},
		{"query absent", Match{Prefix: "/", Query: []QueryMatch{{Name: "v", Kind: HeaderExact, Value: "2"}}}, "/", "GET", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Matches(httptest.NewRequest(tc.meth, tc.url, nil)); got != tc.want {
				t.Errorf("Matches(%s %s) = %v, want %v", tc.meth, tc.url, got, tc.want)
			}
		})
	}
}

func TestWeightedSplit(t *testing.T) {
	r := &Route{Weighted: []WeightedCluster{{Name: "a", Weight: 90, cum: 90}, {Name: "b", Weight: 10, cum: 100}}, totalWeight: 100}
	const n = 10000
	b := 0
	for range n {
		if name, _ := r.PickCluster(); name == "b" {
			b++
		}
	}
	if share := float64(b) / n; math.Abs(share-0.10) > 0.02 {
		t.Errorf("b share %.3f, want 0.10 ± 0.02", share)
	}
}

func TestHashKey(t *testing.T) {
	r := &Route{Hash: []HashPolicy{{Kind: HashHeader, Name: "X-User"}, {Kind: HashSourceIP}}}
	a := httptest.NewRequest("GET", "/", nil)
	a.Header.Set("X-User", "alice")
	h1, ok1 := r.HashKey(a)
	h2, ok2 := r.HashKey(a)
	if !ok1 || !ok2 || h1 != h2 {
		t.Fatalf("same request, keys %x %v / %x %v", h1, ok1, h2, ok2)
	}
	none := &Route{Hash: []HashPolicy{{Kind: HashCookie, Name: "session"}}}
	if _, ok := none.HashKey(httptest.NewRequest("GET", "/", nil)); ok {
		t.Error("no cookie: want no key (random pick)")
	}
}
