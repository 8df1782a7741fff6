package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Fault makes a role misbehave on purpose, for resilience tests. The zero
// value is a healthy server.
type Fault struct {
	// ErrorRate is the share of requests (0..1) answered with ErrorCode.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// ErrorCode is the status of a failed request (default 503).
	ErrorCode int `json:"errorCode,omitempty"`
	// Delay is added before every answer.
	Delay time.Duration `json:"-"`
	// Hang makes every request wait until the client gives up.
	Hang bool `json:"hang,omitempty"`
	// ResetRate is the share of requests (0..1) whose connection is
	// closed without an answer.
	ResetRate float64 `json:"resetRate,omitempty"`
	// Dead resets every new connection as soon as it is accepted and
	// aborts every request on an open one: to a client the process is
	// gone, but the port stays bound so it can come back (FaultControl).
	Dead bool `json:"dead,omitempty"`
}

// MarshalJSON writes Delay as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault // no MarshalJSON: no recursion
	out := struct {
		plain
		Delay string `json:"delay,omitempty"`
	}{plain: plain(f)}
	if f.Delay > 0 {
		out.Delay = f.Delay.String()
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads Delay as a duration string; unknown fields are
// errors (a typo must not silently mean "healthy").
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var in struct {
		plain
		Delay string `json:"delay,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("shop: fault: %w", err)
	}
	*f = Fault(in.plain)
	f.Delay = 0
	if in.Delay != "" {
		d, err := time.ParseDuration(in.Delay)
		if err != nil || d < 0 {
			return fmt.Errorf("shop: fault: delay %q is not a duration", in.Delay)
		}
		f.Delay = d
	}
	return nil
}

// Validate checks the ranges.
func (f Fault) Validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 || f.ResetRate < 0 || f.ResetRate > 1 {
		return errors.New("shop: --fault-error-rate and --fault-reset-rate are shares in 0..1")
	}
	if f.ErrorCode != 0 && (f.ErrorCode < 400 || f.ErrorCode > 599) {
		return fmt.Errorf("shop: --fault-error-code %d is not an error status", f.ErrorCode)
	}
	if f.Delay < 0 {
		return errors.New("shop: --fault-delay is negative")
	}
	return nil
}

// FaultStats are what a FaultControl counted.
type FaultStats struct {
	// Requests is every request that reached the role (faulted or not;
	// /healthz and requests on a dead server excluded).
	Requests int64 `json:"requests"`
	// Fault is the fault in force.
	Fault Fault `json:"fault"`
}

// FaultControl is the fault in force for one server, changeable at run
// time (the admin API, AdminHandler). Every method is safe for concurrent
// use; the request path does one atomic load.
type FaultControl struct {
	cur      atomic.Pointer[Fault]
	requests atomic.Int64
}

// NewFaultControl starts with f (already validated).
func NewFaultControl(f Fault) *FaultControl {
	c := &FaultControl{}
	c.cur.Store(&f)
	return c
}

// Set replaces the fault in force.
func (c *FaultControl) Set(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	c.cur.Store(&f)
	return nil
}

// Get returns the fault in force.
func (c *FaultControl) Get() Fault { return *c.cur.Load() }

// Stats returns the counters and the fault in force.
func (c *FaultControl) Stats() FaultStats {
	return FaultStats{Requests: c.requests.Load(), Fault: c.Get()}
}

// Wrap applies the fault in force around h; /healthz is never faulted.
func (c *FaultControl) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		f := c.cur.Load()
		if f.Dead {
			panic(http.ErrAbortHandler) // net/http closes the connection without an answer
		}
		c.requests.Add(1)
		if *f == (Fault{}) {
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
			panic(http.ErrAbortHandler)
		}
		//nolint:gosec // G404: fault injection, not security.
		if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
			code := f.ErrorCode
			if code == 0 {
				code = http.StatusServiceUnavailable
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, "shop: injected fault (%d)\n", code)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Listener wraps ln so that, while the fault in force is Dead, every
// accepted connection is reset at once (SO_LINGER 0) instead of served.
func (c *FaultControl) Listener(ln net.Listener) net.Listener {
	return &deadListener{Listener: ln, c: c}
}

type deadListener struct {
	net.Listener
	c *FaultControl
}

func (l *deadListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil || !l.c.cur.Load().Dead {
			return conn, err
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// maxFaultBody caps an admin request body.
const maxFaultBody = 4 << 10

// AdminHandler is the run-time fault control API. Serve it only on a
// loopback address that no Service or WorkloadEntry port names (RunAdmin
// refuses anything else), so mesh callers cannot reach it:
//
//	GET    /fault   FaultStats as JSON
//	PUT    /fault   a Fault as JSON ({"errorRate":0.3,"errorCode":503,
//	                "delay":"50ms","hang":false,"resetRate":0,"dead":false});
//	                replaces the fault in force; unknown fields are a 400
//	DELETE /fault   back to healthy
func (c *FaultControl) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	writeStats := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Stats())
	}
	mux.HandleFunc("GET /fault", func(w http.ResponseWriter, _ *http.Request) { writeStats(w) })
	mux.HandleFunc("PUT /fault", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFaultBody)).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.Set(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeStats(w)
	})
	mux.HandleFunc("DELETE /fault", func(w http.ResponseWriter, _ *http.Request) {
		_ = c.Set(Fault{})
		writeStats(w)
	})
	return mux
}

// checkLoopback refuses an admin address that is not a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("shop: --fault-admin %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("shop: --fault-admin %q: must be a loopback address (127.0.0.0/8 or [::1])", addr)
	}
	return nil
}
