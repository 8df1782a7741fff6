package lb

import (
	"sync"
	"testing"

	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
)

func eps(health ...core.HealthStatus) []*Endpoint {
	out := make([]*Endpoint, len(health))
	for i, h := range health {
		out[i] = &Endpoint{Addr: string(rune('a' + i)), Health: h}
	}
	return out
}

func TestRoundRobinSkipsUnusable(t *testing.T) {
	tests := []struct {
		name   string
		health []core.HealthStatus
		want   []string
	}{
		{name: "empty", want: nil},
		{name: "all healthy", health: []core.HealthStatus{core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY}, want: []string{"a", "b"}},
		{name: "unknown counts", health: []core.HealthStatus{core.HealthStatus_UNKNOWN}, want: []string{"a"}},
		{
			name: "unhealthy draining timeout degraded skipped",
			health: []core.HealthStatus{
				core.HealthStatus_UNHEALTHY, core.HealthStatus_HEALTHY, core.HealthStatus_DRAINING,
				core.HealthStatus_TIMEOUT, core.HealthStatus_DEGRADED, core.HealthStatus_UNKNOWN,
			},
			want: []string{"b", "f"},
		},
		{name: "none usable", health: []core.HealthStatus{core.HealthStatus_UNHEALTHY}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rr := NewRoundRobin(eps(tc.health...))
			var got []string
			for _, ep := range rr.Endpoints() {
				got = append(got, ep.Addr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("endpoints = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("endpoints = %v, want %v", got, tc.want)
				}
			}
			if len(tc.want) == 0 {
				if ep := rr.Pick(); ep != nil {
					t.Fatalf("Pick() = %v, want nil", ep.Addr)
				}
			}
		})
	}
}

func TestRoundRobinEvenAndInOrder(t *testing.T) {
	rr := NewRoundRobin(eps(core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY))
	first := rr.Pick()
	idx := map[string]int{"a": 0, "b": 1, "c": 2}
	prev := idx[first.Addr]
	counts := map[string]int{first.Addr: 1}
	for range 299 {
		ep := rr.Pick()
		if got, want := idx[ep.Addr], (prev+1)%3; got != want {
			t.Fatalf("picked %s after index %d, want index %d", ep.Addr, prev, want)
		}
		prev = idx[ep.Addr]
		counts[ep.Addr]++
	}
	for _, a := range []string{"a", "b", "c"} {
		if counts[a] != 100 {
			t.Errorf("endpoint %s picked %d times, want 100 (%v)", a, counts[a], counts)
		}
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	rr := NewRoundRobin(eps(core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY))
	const goroutines, each = 8, 1000
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := map[string]int{}
			for range each {
				local[rr.Pick().Addr]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for k, v := range counts {
		if v != goroutines*each/4 {
			t.Errorf("endpoint %s picked %d times, want %d (%v)", k, v, goroutines*each/4, counts)
		}
	}
}

func BenchmarkRoundRobinPick(b *testing.B) {
	rr := NewRoundRobin(eps(core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY, core.HealthStatus_HEALTHY))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rr.Pick() == nil {
				b.Fatal("nil pick")
			}
		}
	})
}

func TestTargetPortHeader(t *testing.T) {
	loose := &Endpoint{Addr: "10.0.0.1:8080", TargetPort: "8080"}
	if got := loose.TargetPortHeader(); len(got) != 1 || got[0] != "8080" {
		t.Fatalf("outside a picker: %q", got)
	}
	ep := &Endpoint{Addr: "10.0.0.2:9090", TargetPort: "9090", Health: loose.Health}
	p := NewRoundRobin([]*Endpoint{ep})
	if p.Pick() != ep {
		t.Fatal("picker did not pick the endpoint")
	}
	h := ep.TargetPortHeader()
	if len(h) != 1 || h[0] != "9090" || cap(h) != 1 {
		t.Fatalf("in a picker: %q (cap %d)", h, cap(h))
	}
	if n := testing.AllocsPerRun(100, func() { _ = ep.TargetPortHeader() }); n != 0 {
		t.Errorf("TargetPortHeader allocates %v times in a picker", n)
	}
}
