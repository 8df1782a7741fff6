package meshconfig

import (
	"errors"
	"fmt"
	"time"

	"github.com/weftmesh/weft/api/mesh"
)

// MTLSMode says whether a sidecar's inbound port accepts plaintext.
type MTLSMode string

// mTLS modes.
const (
	// MTLSStrict refuses anything but mutual TLS with a mesh certificate.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts mTLS and plaintext, for migration.
	MTLSPermissive MTLSMode = "PERMISSIVE"
)

// OutboundPolicy says what a sidecar does with traffic to a host that is
// not in the registry.
type OutboundPolicy string

// Outbound policies.
const (
	// OutboundRegistryOnly lets out only mesh services and registered
	// external services (through the egress gateway).
	OutboundRegistryOnly OutboundPolicy = "REGISTRY_ONLY"
	// OutboundAllowAny lets unknown destinations out directly.
	OutboundAllowAny OutboundPolicy = "ALLOW_ANY"
)

// Config is the mesh-wide configuration.
type Config struct {
	// TrustDomain of every SPIFFE ID the mesh issues.
	TrustDomain string `json:"trustDomain,omitempty"`
	// ClusterDomain is the DNS suffix of service names (svc.<domain>).
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// MTLSMode is the mesh-wide default inbound mode.
	MTLSMode MTLSMode `json:"mtlsMode,omitempty"`
	// OutboundPolicy for hosts outside the registry.
	OutboundPolicy OutboundPolicy `json:"outboundPolicy,omitempty"`
	// ConnectTimeout bounds every upstream dial.
	ConnectTimeout Duration `json:"connectTimeout,omitempty"`
	// Tracing settings.
	Tracing Tracing `json:"tracing,omitempty"`
	// AccessLog settings (telemetry.go).
	AccessLog AccessLog `json:"accessLog,omitzero"`
	// DNSCapture sends injected pods' DNS to their sidecar's DNS proxy,
	// which answers for mesh services and forwards the rest (off by
	// default; the pod annotation mesh.AnnotationDNSCapture overrides it).
	DNSCapture bool `json:"dnsCapture,omitempty"`
}

// Tracing configures span export.
type Tracing struct {
	// Endpoint is the OTLP/HTTP collector address (host:port, usually port
	// mesh.OTLPPort 4318); the sidecars POST spans to
	// http://<endpoint>/v1/traces. Empty turns export off.
	Endpoint string `json:"endpoint,omitempty"`
	// SamplingRate in [0,1] for requests that arrive without a sampling
	// decision.
	SamplingRate float64 `json:"samplingRate,omitempty"`
	// B3 makes the sidecars emit B3 headers (single and multi) besides
	// W3C traceparent; B3 is always accepted on input.
	B3 bool `json:"b3,omitempty"`
}

// Duration is a time.Duration that reads and writes as "1s", "250ms".
type Duration struct{ time.Duration }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("meshconfig: bad duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// Default returns the configuration a mesh has when nothing is set.
func Default() Config {
	return Config{
		TrustDomain:    mesh.DefaultTrustDomain,
		ClusterDomain:  mesh.DefaultClusterDomain,
		MTLSMode:       MTLSStrict,
		OutboundPolicy: OutboundRegistryOnly,
		ConnectTimeout: Duration{mesh.DefaultConnectTimeout},
		Tracing:        Tracing{SamplingRate: mesh.TracingDefaultSamplingRate},
	}
}

// WithDefaults fills every unset field from Default.
func (c Config) WithDefaults() Config {
	d := Default()
	if c.TrustDomain == "" {
		c.TrustDomain = d.TrustDomain
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = d.ClusterDomain
	}
	if c.MTLSMode == "" {
		c.MTLSMode = d.MTLSMode
	}
	if c.OutboundPolicy == "" {
		c.OutboundPolicy = d.OutboundPolicy
	}
	if c.ConnectTimeout.Duration == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	return c
}

// Validate reports every field that is out of range.
func (c Config) Validate() error {
	var errs []error
	if c.TrustDomain == "" {
		errs = append(errs, errors.New("trustDomain: must be set"))
	}
	if c.ClusterDomain == "" {
		errs = append(errs, errors.New("clusterDomain: must be set"))
	}
	switch c.MTLSMode {
	case MTLSStrict, MTLSPermissive:
	default:
		errs = append(errs, fmt.Errorf("mtlsMode: %q is not STRICT or PERMISSIVE", c.MTLSMode))
	}
	switch c.OutboundPolicy {
	case OutboundRegistryOnly, OutboundAllowAny:
	default:
		errs = append(errs, fmt.Errorf("outboundPolicy: %q is not REGISTRY_ONLY or ALLOW_ANY", c.OutboundPolicy))
	}
	if c.ConnectTimeout.Duration <= 0 {
		errs = append(errs, errors.New("connectTimeout: must be positive"))
	}
	if err := c.Telemetry().Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("meshconfig: %w", errors.Join(errs...))
	}
	return nil
}
