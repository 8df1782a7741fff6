package mesh

// Authorization (docs/architecture.md, Authorization contract): the names
// of the RBAC HTTP filters the control plane puts in the listeners, in the
// order they run, and what the sidecars report.
const (
	// FilterAuthzAudit (action LOG): AUDIT AuthorizationPolicies.
	FilterAuthzAudit = "weft.authz.audit"
	// FilterAuthzDeny (action DENY): DENY AuthorizationPolicies.
	FilterAuthzDeny = "weft.authz.deny"
	// FilterNetpolIngress (action ALLOW): the NetworkPolicy ingress
	// allowlist of an ingress-isolated workload, per inbound port.
	FilterNetpolIngress = "weft.netpol.ingress"
	// FilterAuthzAllow (action ALLOW): ALLOW AuthorizationPolicies.
	FilterAuthzAllow = "weft.authz.allow"
	// FilterNetpolEgress (action ALLOW, outbound listener): the
	// NetworkPolicy egress allowlist of an egress-isolated workload.
	FilterNetpolEgress = "weft.netpol.egress"

	// HeaderForwardedClientCert is stripped by the inbound sidecar before
	// authorization: identity comes from the verified certificate only.
	HeaderForwardedClientCert = "x-forwarded-client-cert"

	// MetricAuthzDenied counts denials by deciding policy.
	MetricAuthzDenied = "weft_authz_denied_total"

	// PortDNS is the port an egress allowlist must allow for DNS.
	PortDNS = 53
)
