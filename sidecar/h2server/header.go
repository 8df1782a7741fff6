package h2server

import "github.com/weftmesh/weft/sidecar/internal/h2key"

// canonicalKey is the canonical form of an HTTP/2 (lower-case) name
// (package h2key, shared with h2client: no allocation for common names).
func canonicalKey(k string) string { return h2key.Canonical(k) }

// lowerKey is the HTTP/2 form of a header name.
func lowerKey(k string) string { return h2key.Lower(k) }
