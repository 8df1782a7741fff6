package resend

import (
	"errors"
	"io"
	"net/http"
	"syscall"
)

// SafeMethod reports whether a request with method may be sent a second
// time without the client asking: GET, HEAD, OPTIONS and TRACE (RFC 9110
// section 9.2.2's idempotent methods less PUT and DELETE, as net/http
// repeats them).
func SafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// HasIdempotencyKey reports whether h carries an Idempotency-Key header:
// the client says any method may be repeated.
func HasIdempotencyKey(h http.Header) bool { return len(h["Idempotency-Key"]) > 0 }

// PeerClosed reports whether err says the peer closed or reset the
// connection: EOF, an unexpected EOF, ECONNRESET or EPIPE (not a timeout
// or a local failure).
func PeerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
