package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Protocols of a destination port.
const (
	ProtocolHTTP = "HTTP"
	ProtocolTLS  = "TLS"
	ProtocolTCP  = "TCP"
)

// Resolutions.
const (
	ResolutionDNS    = "DNS"
	ResolutionStatic = "STATIC"
)

// DefaultMaxConnections bounds a destination's open connections per
// gateway replica when the ExternalService says nothing.
const DefaultMaxConnections = 1024

// Table is everything the gateway serves, sorted by name then port.
type Table struct {
	Destinations []Destination `json:"destinations"`
}

// Destination is one port of one ExternalService.
type Destination struct {
	// Name is "<namespace>/<name>" of the ExternalService, or
	// "service/<namespace>/<name>" of a Service of type ExternalName.
	Name  string   `json:"name"`
	Hosts []string `json:"hosts"`
	// ExternalName, when set (a Service of type ExternalName), is the name
	// the gateway resolves and dials whichever of Hosts matched, the SNI
	// and Host it uses upstream, and a second name a ClientHello may carry.
	ExternalName string `json:"externalName,omitempty"`
	Port         uint32 `json:"port"`
	// Protocol is HTTP, TLS or TCP.
	Protocol string `json:"protocol"`
	// TargetPort at the external host (0: Port).
	TargetPort   uint32 `json:"targetPort,omitempty"`
	OriginateTLS bool   `json:"originateTLS,omitempty"`
	// Resolution is DNS or STATIC (then Endpoints are the addresses).
	Resolution     string   `json:"resolution"`
	Endpoints      []string `json:"endpoints,omitempty"`
	Addresses      []string `json:"addresses,omitempty"`
	CACertificates string   `json:"caCertificates,omitempty"`
	MaxConnections uint32   `json:"maxConnections,omitempty"`
	Rules          []Rule   `json:"rules,omitempty"`

	// Resilience of an HTTP port (empty on TLS and TCP ports), in Envoy's
	// JSON: the route timeout (a Go duration string, "0s": none) and
	// retry_policy, and the cluster circuit_breakers and
	// outlier_detection that a mesh Service with the same TrafficPolicy
	// gets (docs/architecture.md, Egress contract).
	Timeout          string          `json:"timeout,omitempty"`
	RetryPolicy      json.RawMessage `json:"retryPolicy,omitempty"`
	CircuitBreakers  json.RawMessage `json:"circuitBreakers,omitempty"`
	OutlierDetection json.RawMessage `json:"outlierDetection,omitempty"`
	// RetryNonIdempotent is the route metadata retry_non_idempotent.
	RetryNonIdempotent bool `json:"retryNonIdempotent,omitempty"`
}

// Rule allows the principals it names (patterns: exact, "prefix*", "*"),
// restricted on HTTP ports to its methods and paths (exact, "prefix*",
// "*suffix") when set.
type Rule struct {
	Principals []string `json:"principals"`
	Methods    []string `json:"methods,omitempty"`
	Paths      []string `json:"paths,omitempty"`
}

// Upstream is the port dialled at the external host.
func (d *Destination) Upstream() uint32 {
	if d.TargetPort != 0 {
		return d.TargetPort
	}
	return d.Port
}

// Allows reports whether principal may use d (method and path are
// ignored unless d is HTTP).
func (d *Destination) Allows(principal, method, path string) bool {
	if principal == "" {
		return false
	}
	for _, r := range d.Rules {
		if !slices.ContainsFunc(r.Principals, func(p string) bool { return matchPattern(p, principal) }) {
			continue
		}
		if d.Protocol == ProtocolHTTP {
			if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
				continue
			}
			if len(r.Paths) > 0 && !slices.ContainsFunc(r.Paths, func(p string) bool { return matchPattern(p, path) }) {
				continue
			}
		}
		return true
	}
	return false
}

// AddressAllowed reports whether ip is inside d's Addresses.
func (d *Destination) AddressAllowed(ip netip.Addr) bool {
	for _, a := range d.Addresses {
		if p, err := netip.ParsePrefix(a); err == nil && p.Contains(ip) {
			return true
		}
		if x, err := netip.ParseAddr(a); err == nil && x == ip {
			return true
		}
	}
	return false
}

// matchPattern: "*" any, "prefix*", "*suffix", else exact.
func matchPattern(p, s string) bool {
	switch {
	case p == "*":
		return true
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(s, p[:len(p)-1])
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(s, p[1:])
	}
	return p == s
}

// NormalizeHost lower-cases a host name and drops a trailing dot.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// ValidHost reports whether h is a DNS name, or "*." and a DNS name.
func ValidHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %q: not a DNS name", h)
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %q: not a DNS name", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host %q: not a DNS name", h)
			}
		}
	}
	return nil
}

// MatchHost reports whether pattern (exact, or "*.suffix" for exactly one
// more label) matches host; both are compared normalized.
func MatchHost(pattern, host string) bool {
	pattern, host = NormalizeHost(pattern), NormalizeHost(host)
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		label, rest, found := strings.Cut(host, ".")
		return found && label != "" && "."+rest == suffix
	}
	return pattern == host
}

// Index is a compiled Table: lookups by host and port take no lock.
type Index struct {
	exact map[string]*Destination // "host:port"
	wild  map[string]*Destination // ".suffix:port"
	all   []Destination
}

// Compile checks t and indexes it. Two destinations claiming one host and
// port is an error.
func Compile(t Table) (*Index, error) {
	ix := &Index{exact: map[string]*Destination{}, wild: map[string]*Destination{}, all: slices.Clone(t.Destinations)}
	var errs []error
	for i := range ix.all {
		d := &ix.all[i]
		switch d.Protocol {
		case ProtocolHTTP, ProtocolTLS, ProtocolTCP:
		default:
			errs = append(errs, fmt.Errorf("destination %s port %d: protocol %q", d.Name, d.Port, d.Protocol))
		}
		if d.Port == 0 || d.Port > 65535 {
			errs = append(errs, fmt.Errorf("destination %s: port %d", d.Name, d.Port))
		}
		for _, a := range d.Addresses {
			if _, err := netip.ParsePrefix(a); err != nil {
				if _, err := netip.ParseAddr(a); err != nil {
					errs = append(errs, fmt.Errorf("destination %s: address %q", d.Name, a))
				}
			}
		}
		for _, a := range d.Endpoints {
			if _, err := netip.ParseAddr(a); err != nil {
				errs = append(errs, fmt.Errorf("destination %s: endpoint %q", d.Name, a))
			}
		}
		if d.ExternalName != "" {
			if err := ValidHost(d.ExternalName); err != nil || strings.HasPrefix(d.ExternalName, "*") {
				errs = append(errs, fmt.Errorf("destination %s: externalName %q is not a DNS name", d.Name, d.ExternalName))
			}
		}
		p := ":" + strconv.FormatUint(uint64(d.Port), 10)
		for _, h := range d.Hosts {
			if err := ValidHost(h); err != nil {
				errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
				continue
			}
			h = NormalizeHost(h)
			m, key := ix.exact, h+p
			if s, ok := strings.CutPrefix(h, "*"); ok {
				m, key = ix.wild, s+p
			}
			if o := m[key]; o != nil {
				errs = append(errs, fmt.Errorf("destination %s: host %q port %d is already %s's", d.Name, h, d.Port, o.Name))
				continue
			}
			m[key] = d
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("egress: %w", errors.Join(errs...))
	}
	return ix, nil
}

// Lookup finds the destination of host (normalized here) and port: an
// exact host first, then a one-label wildcard; nil when none.
func (ix *Index) Lookup(host string, port uint32) *Destination {
	if ix == nil {
		return nil
	}
	host = NormalizeHost(host)
	p := ":" + strconv.FormatUint(uint64(port), 10)
	if d := ix.exact[host+p]; d != nil {
		return d
	}
	label, rest, ok := strings.Cut(host, ".")
	if !ok || label == "" {
		return nil
	}
	return ix.wild["."+rest+p]
}

// LookupAddress finds a TCP destination whose Addresses contain ip and
// that has port.
func (ix *Index) LookupAddress(ip netip.Addr, port uint32) *Destination {
	if ix == nil {
		return nil
	}
	for i := range ix.all {
		d := &ix.all[i]
		if d.Protocol == ProtocolTCP && d.Port == port && d.AddressAllowed(ip) {
			return d
		}
	}
	return nil
}

// Destinations returns the compiled destinations (read-only).
func (ix *Index) Destinations() []Destination {
	if ix == nil {
		return nil
	}
	return ix.all
}
