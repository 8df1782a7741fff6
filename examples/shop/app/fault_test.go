package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

func TestFaultJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Fault
		wantErr bool
	}{
		{"empty is healthy", `{}`, Fault{}, false},
		{
			"every field", `{"errorRate":0.3,"errorCode":500,"delay":"50ms","hang":true,"resetRate":0.1,"dead":true}`,
			Fault{ErrorRate: 0.3, ErrorCode: 500, Delay: 50 * time.Millisecond, Hang: true, ResetRate: 0.1, Dead: true},
			false,
		},
		{"unknown field", `{"failRate":1}`, Fault{}, true},
		{"bad delay", `{"delay":"soon"}`, Fault{}, true},
		{"negative delay", `{"delay":"-1s"}`, Fault{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Fault
			err := json.Unmarshal([]byte(tc.in), &f)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if f != tc.want {
				t.Fatalf("got %+v, want %+v", f, tc.want)
			}
			out, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			var again Fault
			if err := json.Unmarshal(out, &again); err != nil || again != f {
				t.Fatalf("round trip %s: %+v %v", out, again, err)
			}
		})
	}
}

// TestFaultAdmin changes the faults of a running server through the admin
// API and checks each one takes effect on the next request.
func TestFaultAdmin(t *testing.T) {
	fc := NewFaultControl(Fault{})
	h, err := Handler(Config{Role: RolePayment, Instance: "p", Faults: fc}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = fc.Listener(ln)
	srv.Start()
	defer srv.Close()
	admin := httptest.NewServer(fc.AdminHandler())
	defer admin.Close()

	do := func(method, url, body string) (int, string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	set := func(body string) {
		t.Helper()
		if code, b, err := do(http.MethodPut, admin.URL+"/fault", body); err != nil || code != http.StatusOK {
			t.Fatalf("PUT /fault %s: %d %s %v", body, code, b, err)
		}
	}
	pay := srv.URL + PathPay
	steps := []struct {
		name   string
		apply  func()
		status int // 0: the request fails
	}{
		{"healthy", func() {}, 200},
		{"errors", func() { set(`{"errorRate":1,"errorCode":502}`) }, 502},
		{"hang", func() { set(`{"hang":true}`) }, 0},
		{"reset", func() { set(`{"resetRate":1}`) }, 0},
		{"dead", func() { set(`{"dead":true}`) }, 0},
		{"back to healthy", func() {
			if code, _, err := do(http.MethodDelete, admin.URL+"/fault", ""); err != nil || code != 200 {
				t.Fatalf("DELETE /fault: %d %v", code, err)
			}
		}, 200},
	}
	for _, s := range steps {
		s.apply()
		code, body, err := do(http.MethodGet, pay, "")
		if s.status == 0 {
			if err == nil {
				t.Errorf("%s: status %d, want the request to fail", s.name, code)
			}
			continue
		}
		if err != nil || code != s.status {
			t.Errorf("%s: %d %q %v, want %d", s.name, code, body, err, s.status)
		}
	}
	if code, _, _ := do(http.MethodPut, admin.URL+"/fault", `{"errorRate":2}`); code != http.StatusBadRequest {
		t.Errorf("error rate 2: %d, want 400", code)
	}
	code, body, err := do(http.MethodGet, admin.URL+"/fault", "")
	if err != nil || code != 200 {
		t.Fatal(code, err)
	}
	var st FaultStats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	// healthy, errors, hang, reset and the last one reached the role; the
	// dead one did not.
	if st.Requests != 5 || st.Fault != (Fault{}) {
		t.Errorf("stats %+v, want 5 requests and no fault", st)
	}
}

func TestFaultAdminLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:0": true, "127.3.4.5:9901": true, "[::1]:0": true, "0.0.0.0:9901": false, ":9901": false, "10.0.0.1:9901": false} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok %v", addr, err, ok)
		}
	}
}
