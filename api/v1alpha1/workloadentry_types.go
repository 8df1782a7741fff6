package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkloadEntry describes a workload that is not a Kubernetes Pod: a local
// process, a VM. Services select WorkloadEntries by label exactly as they
// select Pods, and the control plane gives each one a sidecar identity.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=we,categories=weft
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="ServiceAccount",type=string,JSONPath=`.spec.serviceAccount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkloadEntry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WorkloadEntrySpec `json:"spec"`
}

// WorkloadEntrySpec is where a workload runs and who it is.
type WorkloadEntrySpec struct {
	// Address is the workload's IP address. In local mode every workload has
	// its own loopback address (127.0.0.N) and its sidecar listens there too.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Address string `json:"address"`

	// ServiceAccount the workload runs as; its SPIFFE identity is
	// spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>.
	// +kubebuilder:default=default
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// Ports the workload listens on, by name, as a Pod's container ports
	// are named; a Service's named targetPort resolves against them.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Ports []WorkloadPort `json:"ports,omitempty"`

	// Locality of the workload, region/zone/subzone, for locality-aware load
	// balancing.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Locality string `json:"locality,omitempty"`

	// Weight for load balancing against other endpoints of a service.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	// +optional
	Weight uint32 `json:"weight,omitempty"`
}

// WorkloadPort is one named port of a workload.
type WorkloadPort struct {
	// Name of the port, referenced by a Service's named targetPort.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"name"`
	// Port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Protocol: TCP (default) or UDP.
	// +kubebuilder:validation:Enum=TCP;UDP
	// +kubebuilder:default=TCP
	// +optional
	Protocol string `json:"protocol,omitempty"`
}

// WorkloadEntryList is a list of WorkloadEntries.
//
// +kubebuilder:object:root=true
type WorkloadEntryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkloadEntry `json:"items"`
}
