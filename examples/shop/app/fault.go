package app

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// Fault makes a role misbehave on purpose, for resilience tests. The zero
// value is a healthy server. A dead upstream is a process that is not
// running (stop it); everything else is here.
type Fault struct {
	// ErrorRate is the share of requests (0..1) answered with ErrorCode.
	ErrorRate float64
	// ErrorCode is the status of a failed request (default 503).
	ErrorCode int
	// Delay is added before every answer.
	Delay time.Duration
	// Hang makes every request wait until the client gives up.
	Hang bool
	// ResetRate is the share of requests (0..1) whose connection is
	// closed without an answer.
	ResetRate float64
}

// Validate checks the ranges.
func (f Fault) Validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 || f.ResetRate < 0 || f.ResetRate > 1 {
		return errors.New("shop: --fault-error-rate and --fault-reset-rate are shares in 0..1")
	}
	if f.ErrorCode != 0 && (f.ErrorCode < 400 || f.ErrorCode > 599) {
		return fmt.Errorf("shop: --fault-error-code %d is not an error status", f.ErrorCode)
	}
	return nil
}

// wrap applies f around h; /healthz is never faulted.
func (f Fault) wrap(h http.Handler) http.Handler {
	if f == (Fault{}) {
		return h
	}
	code := f.ErrorCode
	if code == 0 {
		code = http.StatusServiceUnavailable
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		if f.Hang {
			<-r.Context().Done()
			return
		}
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		//nolint:gosec // G404: fault injection, not security.
		if f.ResetRate > 0 && rand.Float64() < f.ResetRate {
			panic(http.ErrAbortHandler) // net/http closes the connection without an answer
		}
		//nolint:gosec // G404: fault injection, not security.
		if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, "shop: injected fault (%d)\n", code)
			return
		}
		h.ServeHTTP(w, r)
	})
}
