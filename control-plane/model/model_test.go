package model

import (
	"testing"
)

func TestNewStateSortsAndCopies(t *testing.T) {
	sel := map[string]string{"app": "a"}
	eps := []Endpoint{{Address: "127.0.0.3", Port: 80}, {Address: "127.0.0.2", Port: 80}}
	in := []Service{
		{Name: "b", Namespace: "x", Selector: sel, Ports: []ServicePort{{Port: 90}, {Port: 80, Endpoints: eps}}},
		{Name: "a", Namespace: "x"},
		{Name: "z", Namespace: "a"},
	}
	ws := []Workload{{Name: "w2", Namespace: "x", InboundPorts: []uint32{9, 8, 9}}, {Name: "w1", Namespace: "x"}}
	s := NewState(in, ws)
	var got []string
	for _, svc := range s.Services {
		got = append(got, svc.Namespace+"/"+svc.Name)
	}
	if want := "a/z x/a x/b"; joined(got) != want {
		t.Fatalf("services order = %q, want %q", joined(got), want)
	}
	b := s.Services[2]
	if b.Ports[0].Port != 80 || b.Ports[0].Endpoints[0].Address != "127.0.0.2" {
		t.Fatalf("ports/endpoints not sorted: %+v", b.Ports)
	}
	sel["app"] = "changed"
	eps[0].Address = "changed"
	if b.Selector["app"] != "a" || b.Ports[0].Endpoints[1].Address != "127.0.0.3" {
		t.Fatal("NewState did not copy its input")
	}
	w, ok := s.Workload("w2.x")
	if !ok || len(w.InboundPorts) != 2 || w.InboundPorts[0] != 8 {
		t.Fatalf("Workload(w2.x) = %+v, %v", w, ok)
	}
	if _, ok := s.Workload("nope.x"); ok {
		t.Fatal("Workload(nope.x) found")
	}
	if _, ok := s.Service("x", "b"); !ok {
		t.Fatal("Service(x, b) not found")
	}
}

func TestEndpointHealth(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		want Health
	}{
		{"ready", Endpoint{Ready: true, Serving: true}, Healthy},
		{"not ready", Endpoint{}, Unhealthy},
		{"terminating serving", Endpoint{Serving: true, Terminating: true}, Draining},
		{"terminating not serving", Endpoint{Terminating: true}, Unhealthy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ep.Health(); got != tc.want {
				t.Fatalf("Health() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLocality(t *testing.T) {
	for _, s := range []string{"", "eu", "eu/a", "eu/a/1"} {
		if got := ParseLocality(s).String(); got != s {
			t.Errorf("ParseLocality(%q).String() = %q", s, got)
		}
	}
}

func TestIdentity(t *testing.T) {
	e := Endpoint{Workload: "p-1", Namespace: "shop", ServiceAccount: "payment"}
	if got := e.Identity("td"); got != "spiffe://td/ns/shop/sa/payment" {
		t.Fatalf("Identity = %q", got)
	}
	if got := (Endpoint{}).Identity("td"); got != "" {
		t.Fatalf("Identity of a sidecar-less endpoint = %q", got)
	}
}

func joined(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out
}
