package mesh

// Egress (docs/architecture.md, Egress contract): the egress gateway, the
// outbound traffic policy and what the sidecars report.
const (
	// EgressGatewayService in EgressGatewayNamespace is the egress
	// gateway: its endpoints run the sidecar binary with
	// --mode=egress-gateway.
	EgressGatewayService   = "weft-egress-gateway"
	EgressGatewayNamespace = ControlPlaneNamespace
	// PortEgressGateway is the gateway Service's port (and targetPort).
	PortEgressGateway = 15443

	// ModeSidecar and ModeEgressGateway are the sidecar binary's --mode.
	ModeSidecar       = "sidecar"
	ModeEgressGateway = "egress-gateway"

	// VirtualHostEgressPrefix starts the name of every outbound virtual
	// host that leads to the egress gateway: egress|<ns>/<name>:<port>.
	VirtualHostEgressPrefix = "egress|"
	// VirtualHostAllowAny and ClusterPassthrough carry ALLOW_ANY: a "*"
	// virtual host to an ORIGINAL_DST cluster.
	VirtualHostAllowAny = "allow_any"
	ClusterPassthrough  = "PassthroughCluster"
	// MetadataEgress is the key, under MetadataNamespace on the gateway's
	// inbound filter chain, of the egress table (api/egress.Table).
	MetadataEgress = "egress"
	// MetadataEgressAddresses is the key, under MetadataNamespace on an
	// egress virtual host of a TCP port with addresses, of the list
	// "<cidr>:<port>" ("[<ipv6 cidr>]:<port>") of CONNECT targets that
	// the sidecar sends to the gateway through that virtual host.
	MetadataEgressAddresses = "egress_addresses"

	// MetricRegistryOnlyRefused counts outbound requests refused because
	// their host is not in the registry (REGISTRY_ONLY).
	MetricRegistryOnlyRefused = "weft_outbound_registry_only_refused_total"
	// MetricEgressRequests counts the gateway's decisions by result,
	// reason and service.
	MetricEgressRequests = "weft_egress_requests_total"

	// AnnotationLocalSidecarArgs on a WorkloadEntry holds extra flags for
	// its sidecar in local mode (split like AnnotationLocalCommand).
	AnnotationLocalSidecarArgs = "local.weft.dev/sidecar-args"
)
