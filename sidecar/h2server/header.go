package h2server

import (
	"net/http"
	"strings"
)

// commonKeys are header names whose canonical and lower-case forms are
// kept, so that converting them does not allocate.
var commonKeys = []string{
	"accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
	"age", "access-control-allow-origin", "allow", "authorization", "cache-control",
	"content-disposition", "content-encoding", "content-language", "content-length",
	"content-location", "content-range", "content-type", "cookie", "date", "etag",
	"expect", "expires", "forwarded", "from", "grpc-accept-encoding", "grpc-encoding",
	"grpc-message", "grpc-status", "grpc-status-details-bin", "grpc-timeout", "host",
	"if-match", "if-modified-since", "if-none-match", "if-unmodified-since",
	"last-modified", "link", "location", "max-forwards", "origin", "proxy-authenticate",
	"proxy-authorization", "range", "referer", "refresh", "retry-after", "server",
	"set-cookie", "strict-transport-security", "te", "trailer", "traceparent",
	"tracestate", "user-agent", "vary", "via", "www-authenticate", "x-b3-parentspanid",
	"x-b3-sampled", "x-b3-spanid", "x-b3-traceid", "x-forwarded-for",
	"x-forwarded-host", "x-forwarded-proto", "x-request-id",
}

// headerNames maps lower-case names to canonical ones and back; built once,
// never written after.
var canonicalOf, lowerOf = func() (map[string]string, map[string]string) {
	c := make(map[string]string, len(commonKeys))
	l := make(map[string]string, len(commonKeys))
	for _, k := range commonKeys {
		ck := http.CanonicalHeaderKey(k)
		c[k] = ck
		l[ck] = k
	}
	return c, l
}()

// canonicalKey is the canonical form of an HTTP/2 (lower-case) name.
func canonicalKey(k string) string {
	if ck, ok := canonicalOf[k]; ok {
		return ck
	}
	return http.CanonicalHeaderKey(k)
}

// lowerKey is the HTTP/2 form of a header name.
func lowerKey(k string) string {
	if lk, ok := lowerOf[k]; ok {
		return lk
	}
	return strings.ToLower(k)
}
