package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExternalService registers destinations outside the mesh (hosts and
// ports) that sidecars reach through the egress gateway, and says who may
// use them (spec.allow). Hosts are mesh-wide: the namespace only names the
// object. See docs/architecture.md, Egress contract.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=es,categories=weft
// +kubebuilder:printcolumn:name="Hosts",type=string,JSONPath=`.spec.hosts`
// +kubebuilder:printcolumn:name="Resolution",type=string,JSONPath=`.spec.resolution`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExternalService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ExternalServiceSpec `json:"spec"`
}

// ExternalProtocol is how the gateway carries a port's traffic.
// +kubebuilder:validation:Enum=HTTP;TLS;TCP
type ExternalProtocol string

// Protocols of an external port.
const (
	// ExternalHTTP is forwarded as HTTP (Host preserved), optionally over
	// TLS originated by the gateway.
	ExternalHTTP ExternalProtocol = "HTTP"
	// ExternalTLS is tunnelled (CONNECT); the ClientHello's SNI must name
	// the CONNECT host.
	ExternalTLS ExternalProtocol = "TLS"
	// ExternalTCP is tunnelled (CONNECT) to a host or an address in
	// spec.addresses.
	ExternalTCP ExternalProtocol = "TCP"
)

// Resolution is how the gateway finds an external host's addresses.
// +kubebuilder:validation:Enum=DNS;STATIC
type Resolution string

// Resolutions.
const (
	// ResolutionDNS resolves the host at the gateway, with its own resolver.
	ResolutionDNS Resolution = "DNS"
	// ResolutionStatic uses spec.endpoints.
	ResolutionStatic Resolution = "STATIC"
)

// ExternalServiceSpec is the destination and its access rules.
// +kubebuilder:validation:XValidation:rule="self.resolution != 'STATIC' || size(self.endpoints) > 0",message="STATIC resolution needs endpoints"
type ExternalServiceSpec struct {
	// Hosts are DNS names, exact or "*." followed by a name: a wildcard
	// matches exactly one more non-empty label (not the apex, not deeper).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`
	// +kubebuilder:validation:items:MaxLength=253
	Hosts []string `json:"hosts"`
	// Ports of the destination.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=number
	Ports []ExternalPort `json:"ports"`
	// Resolution: DNS (at the gateway; default) or STATIC (endpoints).
	// +kubebuilder:default=DNS
	// +optional
	Resolution Resolution `json:"resolution,omitempty"`
	// Endpoints are the addresses of a STATIC destination.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Endpoints []ExternalEndpoint `json:"endpoints,omitempty"`
	// Addresses are CIDRs (or IPs) a CONNECT to a TCP port may name
	// directly instead of a host.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Addresses []string `json:"addresses,omitempty"`
	// CACertificates (PEM) verify the external host when the gateway
	// originates TLS; empty: the gateway's system roots.
	// +optional
	CACertificates string `json:"caCertificates,omitempty"`
	// MaxConnections bounds the open connections (and HTTP requests in
	// flight) of each gateway replica to this destination (default 1024).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// Allow lists who may use the destination; no rule allows nobody.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Allow []EgressRule `json:"allow,omitempty"`
}

// ExternalPort is one port of an external destination.
// +kubebuilder:validation:XValidation:rule="!has(self.originateTLS) || !self.originateTLS || self.protocol == 'HTTP'",message="originateTLS is for HTTP ports"
type ExternalPort struct {
	// Number is the port apps use.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Number int32 `json:"number"`
	// Name of the port.
	// +optional
	Name string `json:"name,omitempty"`
	// Protocol: HTTP, TLS (by SNI) or TCP.
	Protocol ExternalProtocol `json:"protocol"`
	// TargetPort at the external host (default: Number).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	TargetPort int32 `json:"targetPort,omitempty"`
	// OriginateTLS makes the gateway speak TLS to the external host for
	// this HTTP port (apps send plain HTTP to the sidecar).
	// +optional
	OriginateTLS bool `json:"originateTLS,omitempty"`
}

// ExternalEndpoint is one address of a STATIC destination.
type ExternalEndpoint struct {
	// Address is an IP address.
	Address string `json:"address"`
}

// EgressRule allows sources to reach the destination. Entries of from are
// ORed; the rule's fields are ANDed.
type EgressRule struct {
	// From: any of these sources; empty allows no one.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	From []EgressSource `json:"from"`
	// Ports the rule covers; empty: every port.
	// +optional
	Ports []int32 `json:"ports,omitempty"`
	// Methods (HTTP ports only); empty: any.
	// +optional
	Methods []string `json:"methods,omitempty"`
	// Paths (HTTP ports only): exact, "prefix*", "*suffix"; empty: any.
	// +optional
	Paths []string `json:"paths,omitempty"`
}

// EgressSource names callers by verified identity; fields are ORed.
type EgressSource struct {
	// Principals are SPIFFE IDs: exact, "prefix*" or "*".
	// +optional
	Principals []string `json:"principals,omitempty"`
	// Namespaces: every service account of these namespaces.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// ServiceAccounts as "<namespace>/<name>".
	// +optional
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
}

// ExternalServiceList is a list of ExternalServices.
//
// +kubebuilder:object:root=true
type ExternalServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExternalService `json:"items"`
}
