package v1alpha1

// TargetRef names the object a policy applies to, in the policy's own
// namespace: a Service (group "" or "core"), or for a TrafficPolicy an
// ExternalService (group weft.dev), whose policy the egress gateway applies.
type TargetRef struct {
	// Group of the target; "" (core) for a Service, weft.dev for an
	// ExternalService.
	// +kubebuilder:validation:Enum="";core;weft.dev
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the target.
	// +kubebuilder:validation:Enum=Service;ExternalService
	// +kubebuilder:default=Service
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the target.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Source names callers by their verified identity or address. Fields are
// ANDed; values within one field are ORed.
type Source struct {
	// Principals are SPIFFE IDs, exact or with a trailing "*" (prefix) or
	// leading "*" (suffix).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Principals []string `json:"principals,omitempty"`
	// Namespaces of the caller's identity.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Namespaces []string `json:"namespaces,omitempty"`
	// ServiceAccounts as "<namespace>/<name>" or, within the policy's
	// namespace, "<name>".
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// IPBlocks are CIDRs of the caller's address (for non-mesh callers).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	IPBlocks []string `json:"ipBlocks,omitempty"`
}

// Duration is a Go duration string such as "250ms" or "5s".
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
type Duration string
