// Package httptoken reads comma-separated token lists in HTTP header values
// (RFC 9110 section 5.6.1: Connection, TE, ...), without allocating: one
// implementation for the HTTP/1.1 server and client cores and the proxy.
package httptoken
