package inject

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/weftmesh/weft/api/mesh"
)

// Template holds the injection settings that are not mesh config: what the
// injected containers look like. Start from DefaultTemplate; the zero value
// is not valid.
type Template struct {
	// ProxyImage runs both the init step and the proxy (weft-sidecar).
	ProxyImage      string            `json:"proxyImage"`
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// XDSAddress is the control plane's xDS/CA address, host:port.
	XDSAddress string `json:"xdsAddress"`
	// TokenAudience of the projected ServiceAccount token.
	TokenAudience string `json:"tokenAudience"`
	// TokenExpirationSeconds of the projected token.
	TokenExpirationSeconds int64 `json:"tokenExpirationSeconds"`
	// TrustBundleConfigMap is the ConfigMap (in the pod's namespace) that
	// holds the trust bundle under mesh.TrustBundleKey.
	TrustBundleConfigMap string `json:"trustBundleConfigMap"`
	// ProxyCPU, ProxyMemory are the proxy's requests; the limits are empty
	// (none) unless set. Pod annotations override each.
	ProxyCPU         string `json:"proxyCPU,omitempty"`
	ProxyMemory      string `json:"proxyMemory,omitempty"`
	ProxyCPULimit    string `json:"proxyCPULimit,omitempty"`
	ProxyMemoryLimit string `json:"proxyMemoryLimit,omitempty"`
	// LegacySidecar runs the proxy as a regular container, for clusters
	// without native sidecars (restartable init containers, Kubernetes
	// < 1.29 or the SidecarContainers feature off).
	LegacySidecar bool `json:"legacySidecar,omitempty"`
	// LogLevel of the proxy: debug, info, warn or error.
	LogLevel string `json:"logLevel,omitempty"`
	// Capture defaults; pod annotations replace each list.
	IncludeInboundPorts  string `json:"includeInboundPorts,omitempty"`  // "*" or ports
	ExcludeInboundPorts  string `json:"excludeInboundPorts,omitempty"`  // ports
	IncludeOutboundPorts string `json:"includeOutboundPorts,omitempty"` // "*" or ports
	ExcludeOutboundPorts string `json:"excludeOutboundPorts,omitempty"` // ports
	ExcludeOutboundCIDRs string `json:"excludeOutboundCIDRs,omitempty"` // CIDRs
}

// DefaultXDSAddress is the control plane's Service in Kubernetes:
// weft-control-plane.weft-system.svc:15012.
func DefaultXDSAddress() string {
	return net.JoinHostPort(mesh.ControlPlaneServiceAccount+"."+mesh.ControlPlaneNamespace+".svc", strconv.Itoa(mesh.PortXDS))
}

// DefaultTemplate returns the template every setting starts from.
func DefaultTemplate() Template {
	return Template{
		ProxyImage:             mesh.DefaultProxyImage,
		ImagePullPolicy:        corev1.PullIfNotPresent,
		XDSAddress:             DefaultXDSAddress(),
		TokenAudience:          mesh.TokenAudience,
		TokenExpirationSeconds: mesh.DefaultTokenExpirationSeconds,
		TrustBundleConfigMap:   mesh.TrustBundleConfigMap,
		ProxyCPU:               mesh.DefaultProxyCPU,
		ProxyMemory:            mesh.DefaultProxyMemory,
		LogLevel:               "info",
		IncludeInboundPorts:    "*",
		IncludeOutboundPorts:   "*",
	}
}

// Validate reports every bad field.
func (t Template) Validate() error {
	var errs []error
	if t.ProxyImage == "" {
		errs = append(errs, errors.New("proxyImage: must be set"))
	}
	switch t.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("imagePullPolicy: %q is not Always, IfNotPresent or Never", t.ImagePullPolicy))
	}
	if _, _, err := net.SplitHostPort(t.XDSAddress); err != nil {
		errs = append(errs, fmt.Errorf("xdsAddress: %w", err))
	}
	if t.TokenAudience == "" {
		errs = append(errs, errors.New("tokenAudience: must be set"))
	}
	if t.TokenExpirationSeconds < 600 {
		errs = append(errs, fmt.Errorf("tokenExpirationSeconds: %d is below the API server's minimum 600", t.TokenExpirationSeconds))
	}
	if t.TrustBundleConfigMap == "" {
		errs = append(errs, errors.New("trustBundleConfigMap: must be set"))
	}
	for _, q := range []struct{ name, v string }{
		{"proxyCPU", t.ProxyCPU},
		{"proxyMemory", t.ProxyMemory},
		{"proxyCPULimit", t.ProxyCPULimit},
		{"proxyMemoryLimit", t.ProxyMemoryLimit},
	} {
		if q.v == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", q.name, q.v, err))
		}
	}
	switch t.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel: %q is not debug, info, warn or error", t.LogLevel))
	}
	for _, l := range []struct {
		name, v string
		star    bool
	}{
		{"includeInboundPorts", t.IncludeInboundPorts, true},
		{"excludeInboundPorts", t.ExcludeInboundPorts, false},
		{"includeOutboundPorts", t.IncludeOutboundPorts, true},
		{"excludeOutboundPorts", t.ExcludeOutboundPorts, false},
	} {
		if _, err := parsePorts(l.v, l.star); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.name, err))
		}
	}
	if _, err := parseCIDRs(t.ExcludeOutboundCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("excludeOutboundCIDRs: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("inject: template: %w", errors.Join(errs...))
	}
	return nil
}

// parsePorts normalises a comma-separated port list ("" = none; "*" = all
// when star is allowed). The result is canonical: trimmed, in the given
// order, without duplicates.
func parsePorts(s string, star bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if s == "*" {
		if !star {
			return "", errors.New(`"*" is not allowed here`)
		}
		return "*", nil
	}
	seen := map[uint64]bool{}
	out := make([]string, 0, strings.Count(s, ",")+1)
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		p, err := strconv.ParseUint(f, 10, 16)
		if err != nil || p == 0 {
			return "", fmt.Errorf("%q is not a port (1-65535)", f)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, strconv.FormatUint(p, 10))
		}
	}
	return strings.Join(out, ","), nil
}

// parseCIDRs normalises a comma-separated CIDR list ("" = none).
func parseCIDRs(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return "", fmt.Errorf("%q is not a CIDR: %w", f, err)
		}
		out = append(out, p.Masked().String())
	}
	return strings.Join(out, ","), nil
}
