package bodytest

import (
	"io"
	"testing"
	"time"
)

// Await waits for ch, failing the test when the request ended first (its
// outcome arrived on done) or nothing happened for long: a hang guard,
// not a timing assertion.
func Await[T, R any](t *testing.T, what string, ch <-chan T, done <-chan R) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case res := <-done:
		t.Fatalf("the request ended before %s: %+v", what, res)
	case <-time.After(20 * time.Second):
		t.Fatalf("waited 20 s for %s", what)
	}
	var zero T
	return zero
}

// Write writes b to the client's body pipe, failing the test if it cannot.
func Write(t *testing.T, pw *io.PipeWriter, b []byte) {
	t.Helper()
	if _, err := pw.Write(b); err != nil {
		t.Fatalf("client body write: %v", err)
	}
}

// Wait is Await for an event that is not raced by a request's outcome.
func Wait[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	return Await[T, struct{}](t, what, ch, nil)
}
