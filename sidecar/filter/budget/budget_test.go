package budget

import "testing"

func TestRetryBudget(t *testing.T) {
	l := New(Thresholds{MaxRequests: 1000, MaxPendingRequests: 1000, MaxConnections: 1000, BudgetPercent: 20, BudgetMin: 3}, nil)
	for range 100 {
		if !l.StartRequest() {
			t.Fatal("request refused")
		}
	}
	got := 0
	for range 100 {
		if _, ok := l.StartRetry(); ok {
			got++
		}
	}
	if got != 20 {
		t.Errorf("100 requests in flight: %d retries allowed, want 20", got)
	}
	for range 100 {
		l.EndRequest()
	}
	for range got {
		l.EndRetry()
	}
	got = 0
	for range 10 {
		if _, ok := l.StartRetry(); ok {
			got++
		}
	}
	if got != 3 {
		t.Errorf("no requests in flight: %d retries allowed, want the floor 3", got)
	}
}

func TestLimits(t *testing.T) {
	l := New(Thresholds{MaxRequests: 2, MaxPendingRequests: 1, MaxConnections: 1, MaxRetries: 1}, nil)
	first, second, third := l.StartRequest(), l.StartRequest(), l.StartRequest()
	if !first || !second || third {
		t.Error("max_requests 2")
	}
	if !l.StartPending() || l.StartPending() {
		t.Error("max_pending_requests 1")
	}
	if !l.StartConn() || l.StartConn() {
		t.Error("max_connections 1")
	}
	if _, ok := l.StartRetry(); !ok {
		t.Error("max_retries 1: first refused")
	}
	if r, ok := l.StartRetry(); ok || r != MaxRetries {
		t.Errorf("max_retries 1: second %v %q", ok, r)
	}
	l.EndRequest()
	if !l.StartRequest() {
		t.Error("released request not reusable")
	}
}
