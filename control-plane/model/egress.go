package model

import (
	"cmp"
	"slices"
)

// ExternalService is a destination outside the mesh, reached through the
// egress gateway, and who may use it (docs/architecture.md, Egress
// contract). Hosts are mesh-wide. It comes from a weft.dev ExternalService
// or from a v1 Service of type ExternalName (then ExternalName is set).
type ExternalService struct {
	Name      string
	Namespace string
	// Hosts are exact DNS names or "*." + a name (one more label).
	Hosts []string
	// ExternalName is the spec.externalName of a Service of type
	// ExternalName ("" for an ExternalService): the gateway resolves and
	// dials it whichever host the caller named, and the Service is also
	// reached by its mesh names (<name>.<namespace>[.svc[.<domain>]]).
	ExternalName string
	// Ports sorted by number.
	Ports []ExternalPort
	// Resolution is "DNS" or "STATIC" (then Endpoints are the addresses).
	Resolution     string
	Endpoints      []string
	Addresses      []string
	CACertificates string
	// MaxConnections per gateway replica; 0: the default.
	MaxConnections uint32
	// Allow rules; none allows nobody.
	Allow []EgressRule
	// Policy is the TrafficPolicy whose retry, timeout, limits and outlier
	// detection the gateway applies to HTTP requests (nil: the defaults).
	Policy *TrafficPolicy
}

// ExternalPort is one port of an ExternalService.
type ExternalPort struct {
	Number uint32
	Name   string
	// Protocol is "HTTP", "TLS" or "TCP".
	Protocol     string
	TargetPort   uint32
	OriginateTLS bool
}

// EgressRule allows sources (ORed) to use the ports it lists (all when
// empty), on HTTP ports only with its methods and paths when set.
type EgressRule struct {
	Principals      []string
	Namespaces      []string
	ServiceAccounts []string // "<namespace>/<name>"
	Ports           []uint32
	Methods         []string
	Paths           []string
}

// WithEgress returns a copy of s holding the external services, sorted by
// namespace then name, each with its ports sorted (deep copies).
func (s State) WithEgress(es []ExternalService) State {
	s.Egress = nil
	for _, e := range es {
		e.Hosts = slices.Clone(e.Hosts)
		e.Ports = slices.Clone(e.Ports)
		slices.SortFunc(e.Ports, func(a, b ExternalPort) int { return cmp.Compare(a.Number, b.Number) })
		e.Endpoints = slices.Clone(e.Endpoints)
		e.Addresses = slices.Clone(e.Addresses)
		rules := make([]EgressRule, len(e.Allow))
		for i, r := range e.Allow {
			rules[i] = EgressRule{
				Principals: slices.Clone(r.Principals), Namespaces: slices.Clone(r.Namespaces),
				ServiceAccounts: slices.Clone(r.ServiceAccounts), Ports: slices.Clone(r.Ports),
				Methods: slices.Clone(r.Methods), Paths: slices.Clone(r.Paths),
			}
		}
		e.Allow = rules
		s.Egress = append(s.Egress, e)
	}
	slices.SortFunc(s.Egress, func(a, b ExternalService) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return s
}
