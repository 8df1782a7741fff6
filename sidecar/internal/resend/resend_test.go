package resend_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/weftmesh/weft/sidecar/internal/resend"
)

func TestSafeMethod(t *testing.T) {
	for m, want := range map[string]bool{
		http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true,
		http.MethodPost: false, http.MethodPut: false, http.MethodDelete: false, http.MethodPatch: false,
		http.MethodConnect: false, "": false, "get": false,
	} {
		if got := resend.SafeMethod(m); got != want {
			t.Errorf("SafeMethod(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestHasIdempotencyKey(t *testing.T) {
	if resend.HasIdempotencyKey(http.Header{"X-Idempotency-Key": {"k"}}) || resend.HasIdempotencyKey(nil) {
		t.Error("a header without Idempotency-Key has one")
	}
	if !resend.HasIdempotencyKey(http.Header{"Idempotency-Key": {"k"}}) {
		t.Error("Idempotency-Key not seen")
	}
}

func TestPeerClosed(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}), true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{syscall.ECONNABORTED, false}, // h1client's own addition
		{context.DeadlineExceeded, false},
		{os.ErrDeadlineExceeded, false},
		{syscall.ECONNREFUSED, false},
	} {
		if got := resend.PeerClosed(tc.err); got != tc.want {
			t.Errorf("PeerClosed(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
