package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   Fault
		status  int
		wantErr bool
	}{
		{"healthy", Fault{}, http.StatusOK, false},
		{"every request fails", Fault{ErrorRate: 1}, http.StatusServiceUnavailable, false},
		{"custom code", Fault{ErrorRate: 1, ErrorCode: 500}, http.StatusInternalServerError, false},
		{"reset", Fault{ResetRate: 1}, 0, true},
		{"hang", Fault{Hang: true}, 0, true},
		{"delay", Fault{Delay: 30 * time.Millisecond}, http.StatusOK, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Handler(Config{Role: RolePayment, Instance: "p", Fault: tc.fault}, http.DefaultClient)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+PathPay, nil)
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if tc.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want an error", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if el := time.Since(start); el < tc.fault.Delay {
				t.Errorf("answered after %s, want >= %s", el, tc.fault.Delay)
			}
		})
	}
	if _, err := Handler(Config{Role: RolePayment, Fault: Fault{ErrorRate: 2}}, http.DefaultClient); err == nil {
		t.Error("error rate 2 accepted")
	}
}
