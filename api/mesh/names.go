package mesh

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Ports. Each sidecar uses the same ports; in local mode every workload has
// its own loopback address, in Kubernetes its own network namespace.
const (
	// PortOutbound is the sidecar's outbound listener: the HTTP proxy apps
	// send to, and the target of iptables outbound capture.
	PortOutbound = 15001
	// PortInbound is the sidecar's inbound listener (sidecar-to-sidecar
	// traffic, mTLS once identity is on), and the target of inbound capture.
	PortInbound = 15006
	// PortAdmin is the sidecar's admin server, bound to loopback (locally to
	// the workload's own loopback address): /ready, /config_dump, pprof.
	PortAdmin = 15000
	// PortHealth serves /healthz/ready and Prometheus /metrics.
	PortHealth = 15020
	// PortXDS is the control plane's xDS and CA gRPC port.
	PortXDS = 15012
	// PortWebhook is the control plane's admission webhook (HTTPS).
	PortWebhook = 15017
	// PortDebug is the control plane's debug and metrics HTTP port.
	PortDebug = 15014
	// PortDNSProxy is the sidecar's DNS proxy (UDP and TCP, on 127.0.0.1 in a
	// pod): the target of the opt-in DNS capture (AnnotationDNSCapture).
	PortDNSProxy = 15053
)

// MetricDNSQueries counts the sidecar DNS proxy's queries by result:
// answered (a mesh name, with addresses), nodata (a mesh name without an
// address of the asked family), forwarded (relayed from an upstream),
// servfail (no upstream answered), formerr (a question that does not
// parse); messages with no reply (unparseable header, replies) are not
// counted.
const MetricDNSQueries = "weft_dns_queries_total"

// ProxyUID is the user id the sidecar runs as; capture rules exclude it.
const ProxyUID = 1337

// Labels and annotations.
const (
	// LabelInject on a namespace (value InjectEnabled) turns injection on;
	// on a pod (value InjectDisabled) opts that pod out.
	LabelInject    = "weft.dev/inject"
	InjectEnabled  = "enabled"
	InjectDisabled = "disabled"

	// AnnotationInjected records what the injector did to a pod.
	AnnotationInjected = "weft.dev/injected"
	// AnnotationIncludeOutboundPorts, AnnotationExcludeOutboundPorts,
	// AnnotationExcludeInboundPorts and AnnotationExcludeOutboundCIDRs tune
	// capture for one pod.
	AnnotationIncludeOutboundPorts = "weft.dev/include-outbound-ports"
	AnnotationExcludeOutboundPorts = "weft.dev/exclude-outbound-ports"
	AnnotationExcludeInboundPorts  = "weft.dev/exclude-inbound-ports"
	AnnotationExcludeOutboundCIDRs = "weft.dev/exclude-outbound-cidrs"
	// AnnotationProxyCPU and AnnotationProxyMemory override the sidecar's
	// resource requests.
	AnnotationProxyCPU    = "weft.dev/proxy-cpu"
	AnnotationProxyMemory = "weft.dev/proxy-memory"
)

// Defaults.
const (
	DefaultTrustDomain   = "cluster.local"
	DefaultClusterDomain = "cluster.local"
	// DefaultDebounce is how long the control plane waits for more changes
	// before it translates and pushes.
	DefaultDebounce = 100 * time.Millisecond
	// DefaultMaxConnecting is how many proxies the control plane sends
	// their first configuration at once; more wait their turn, so that a
	// rollout or reconnect storm does not hold every proxy's first
	// configuration in memory together.
	DefaultMaxConnecting = 64
	// DefaultMaxSubscriptions is how many resource names one ADS stream
	// may subscribe to per type: far more than a proxy of the largest
	// mesh names (one per service port it reaches), few enough that what
	// a stream keeps of its subscription stays bounded.
	DefaultMaxSubscriptions = 100_000
	// DefaultConnectTimeout bounds a sidecar's dial to an upstream.
	DefaultConnectTimeout = 1 * time.Second
	// DefaultCertLifetime is the lifetime of a workload certificate.
	DefaultCertLifetime = 24 * time.Hour
)

// Headers the sidecars exchange on the sidecar-to-sidecar hop. Inbound
// sidecars strip them before the request reaches the app, and strip any the
// app or a client tries to send on its own.
const (
	// HeaderTargetPort carries the workload port a request is for when the
	// outbound sidecar dials the peer's inbound port directly (local mode).
	HeaderTargetPort = "x-weft-target-port"
	// HeaderPeerIdentity is set by the inbound sidecar, from the verified
	// peer certificate only, for the app's information.
	HeaderPeerIdentity = "x-weft-peer-identity"
	// HeaderUpstream names the endpoint that served a request, when debug
	// headers are asked for.
	HeaderUpstream = "x-weft-upstream"
)

// xDS names.
const (
	// ListenerOutbound and ListenerInbound are the two listeners every
	// sidecar receives.
	ListenerOutbound = "outbound"
	ListenerInbound  = "inbound"
	// RouteOutbound is the outbound listener's RDS route configuration.
	RouteOutbound = "outbound"
	// MetadataNamespace is the filter_metadata key Weft puts its endpoint
	// and cluster metadata under.
	MetadataNamespace = "weft"
	// MetadataTunnelPort on an endpoint says the endpoint runs a sidecar
	// whose inbound listener is at that port of the endpoint's address.
	MetadataTunnelPort = "tunnel_port"
	// MetadataWorkload names the workload (name.namespace) of an endpoint.
	MetadataWorkload = "workload"
	// MetadataIdentity is an endpoint's SPIFFE ID.
	MetadataIdentity = "identity"
	// MetadataServiceHost (string) on an outbound service cluster is the
	// service's FQDN (ServiceHost); MetadataServiceAddresses (list of
	// strings) its virtual IPs (the ClusterIP; absent for a headless
	// service). The sidecar's DNS proxy answers A/AAAA queries from them.
	MetadataServiceHost      = "service_host"
	MetadataServiceAddresses = "service_addresses"
)

// ServiceHost is the fully qualified name of a service:
// <name>.<namespace>.svc.<clusterDomain>.
func ServiceHost(name, namespace, clusterDomain string) string {
	return name + "." + namespace + ".svc." + clusterDomain
}

// OutboundClusterName is the xDS cluster name of a service port:
// outbound|<port>||<host>, where host is the service's FQDN.
func OutboundClusterName(port uint32, host string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "||" + host
}

// InboundClusterName is the xDS cluster name for a workload's own port.
func InboundClusterName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// ParseClusterName splits a cluster name into direction, port and host.
func ParseClusterName(name string) (direction string, port uint32, host string, err error) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || (parts[0] != "outbound" && parts[0] != "inbound") || parts[2] != "" {
		return "", 0, "", fmt.Errorf("mesh: cluster name %q is not <direction>|<port>||<host>", name)
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || p == 0 || p > 65535 {
		return "", 0, "", fmt.Errorf("mesh: cluster name %q has bad port %q", name, parts[1])
	}
	return parts[0], uint32(p), parts[3], nil
}

// NodeID is the xDS node id of a sidecar: <workload>.<namespace>.
func NodeID(workload, namespace string) string {
	return workload + "." + namespace
}

// ParseNodeID splits a node id into workload and namespace.
func ParseNodeID(id string) (workload, namespace string, err error) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 || i == len(id)-1 {
		return "", "", fmt.Errorf("mesh: node id %q is not <workload>.<namespace>", id)
	}
	return id[:i], id[i+1:], nil
}
