package httptoken

import "strings"

// TrimOWS trims optional whitespace (space, tab) around a header value.
func TrimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Contains reports whether the comma-separated list v holds token (ASCII
// case-insensitive; a token's ";parameters" are ignored).
func Contains(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		t, _, _ = strings.Cut(t, ";")
		if strings.EqualFold(TrimOWS(t), token) {
			return true
		}
	}
	return false
}

// Any reports whether any of the header's values holds token (Contains).
func Any(values []string, token string) bool {
	for _, v := range values {
		if Contains(v, token) {
			return true
		}
	}
	return false
}
