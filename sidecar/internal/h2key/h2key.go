package h2key

import (
	"net/http"
	"strings"
)

// common are header names whose canonical and lower-case forms are kept.
var common = []string{
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
	"x-forwarded-host", "x-forwarded-proto", "x-request-id", "x-envoy-expected-rq-timeout-ms",
	"x-weft-target-port", "x-weft-app-unreachable",
}

var canonicalOf, lowerOf = func() (map[string]string, map[string]string) {
	c := make(map[string]string, len(common))
	l := make(map[string]string, len(common))
	for _, k := range common {
		ck := http.CanonicalHeaderKey(k)
		c[k] = ck
		l[ck] = k
	}
	return c, l
}()

// Canonical is the canonical form of an HTTP/2 (lower-case) name.
func Canonical(k string) string {
	if ck, ok := canonicalOf[k]; ok {
		return ck
	}
	return http.CanonicalHeaderKey(k)
}

// Lower is the HTTP/2 form of a header name.
func Lower(k string) string {
	if lk, ok := lowerOf[k]; ok {
		return lk
	}
	return strings.ToLower(k)
}
