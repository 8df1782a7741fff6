package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationPolicy allows, denies or audits requests to the workloads it
// selects, by the caller's verified identity and the request's operation.
// DENY wins over ALLOW; once any ALLOW policy selects a workload, anything
// not allowed is denied. It translates to Envoy RBAC.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ap,categories=weft
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationAction is what a matching rule does.
// +kubebuilder:validation:Enum=ALLOW;DENY;AUDIT
type AuthorizationAction string

// Actions.
const (
	ActionAllow AuthorizationAction = "ALLOW"
	ActionDeny  AuthorizationAction = "DENY"
	ActionAudit AuthorizationAction = "AUDIT"
)

// AuthorizationPolicySpec selects workloads and lists rules.
type AuthorizationPolicySpec struct {
	// Selector picks workloads in the policy's namespace; empty selects all.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Action of the rules.
	// +kubebuilder:default=ALLOW
	// +optional
	Action AuthorizationAction `json:"action,omitempty"`
	// Rules; a request matches the policy when it matches any rule. An
	// ALLOW policy with no rules allows nothing.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule matches when every non-empty part matches.
type AuthorizationRule struct {
	// From: any of these sources.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	From []Source `json:"from,omitempty"`
	// To: any of these operations.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	To []Operation `json:"to,omitempty"`
	// When: all of these conditions.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	When []Condition `json:"when,omitempty"`
}

// Operation matches a request. Fields are ANDed, values ORed. Paths are
// matched after normalization; "/p/*" is a prefix, "*.png" a suffix.
type Operation struct {
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Hosts []string `json:"hosts,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Ports []uint32 `json:"ports,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Methods []string `json:"methods,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Paths []string `json:"paths,omitempty"`
}

// Condition matches a request header against values.
type Condition struct {
	// Header name, lower case.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Header string `json:"header"`
	// Values, exact or with a "*" prefix/suffix wildcard; any matches.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Values []string `json:"values"`
}

// AuthorizationPolicyList is a list of AuthorizationPolicies.
//
// +kubebuilder:object:root=true
type AuthorizationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthorizationPolicy `json:"items"`
}
