package httptoken

import "testing"

func TestContains(t *testing.T) {
	for _, tc := range []struct {
		v, token string
		want     bool
	}{
		{"close", "close", true},
		{"Keep-Alive, Close", "close", true},
		{" \tkeep-alive\t ,upgrade", "keep-alive", true},
		{"trailers;q=0.5, deflate", "trailers", true},
		{"closed", "close", false},
		{"x-close, closer", "close", false},
		{"", "close", false},
		{",,", "close", false},
	} {
		if got := Contains(tc.v, tc.token); got != tc.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", tc.v, tc.token, got, tc.want)
		}
	}
	if !Any([]string{"gzip", "trailers"}, "trailers") || Any([]string{"gzip"}, "trailers") || Any(nil, "x") {
		t.Error("Any")
	}
	if got := TrimOWS(" \t a b\t "); got != "a b" {
		t.Errorf("TrimOWS = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { Contains("a, b, Close", "close") }); n != 0 {
		t.Errorf("Contains allocates %.0f times", n)
	}
}
