package file

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

// Objects are a registry's objects by kind, already decoded: what the
// Kubernetes registry lists from its informers. Build turns them into the
// same model.State that Parse makes of a file, with the same checks.
//
// Pods are the workloads Kubernetes runs (not WorkloadEntries): their
// endpoints come from the EndpointSlices Kubernetes writes for each Service
// (not from Service selectors, which only decide the pods' inbound ports),
// and an EndpointSlice endpoint whose targetRef is one of these pods is that
// workload's sidecar endpoint.
type Objects struct {
	Services              []*corev1.Service
	EndpointSlices        []*discoveryv1.EndpointSlice
	WorkloadEntries       []*v1alpha1.WorkloadEntry
	Pods                  []model.Workload
	HTTPRoutes            []*gwv1.HTTPRoute
	TrafficPolicies       []*v1alpha1.TrafficPolicy
	Namespaces            []*corev1.Namespace
	ConfigMaps            []*corev1.ConfigMap
	NetworkPolicies       []*networkingv1.NetworkPolicy
	AuthorizationPolicies []*v1alpha1.AuthorizationPolicy
	ExternalServices      []*v1alpha1.ExternalService
}

// Build validates objs one by one (an object that fails its checks is left
// out and reported), checks them against each other and assembles the
// state. Unlike Parse it always returns a state: a live registry cannot
// refuse the cluster, so the errors (Error.File is source, Line is 0) are for
// logging and metrics. Build deep-copies nothing it keeps: the caller passes
// objects it may give away (copies of informer cache objects).
func Build(source string, objs Objects) (model.State, Errors) {
	p := &parser{file: source, seen: map[string]*document{}, kube: &kubeMode{pods: map[[2]string]bool{}}}
	addAll(p, "Service", validation.IsDNS1035Label, objs.Services, &p.objs.services, validateService)
	addAll(p, "EndpointSlice", validation.IsDNS1123Subdomain, objs.EndpointSlices, &p.objs.endpointSlices, validateEndpointSlice)
	addAll(p, "WorkloadEntry", validation.IsDNS1123Subdomain, objs.WorkloadEntries, &p.objs.workloadEntries, validateWorkloadEntry)
	addAll(p, "HTTPRoute", validation.IsDNS1123Subdomain, objs.HTTPRoutes, &p.objs.httpRoutes, validateHTTPRoute)
	addAll(p, "TrafficPolicy", validation.IsDNS1123Subdomain, objs.TrafficPolicies, &p.objs.trafficPolicies, validateTrafficPolicy)
	addAll(p, "Namespace", validation.IsDNS1123Label, objs.Namespaces, &p.objs.namespaces, validateNamespace)
	addAll(p, "ConfigMap", validation.IsDNS1123Subdomain, objs.ConfigMaps, &p.objs.configMaps, validateConfigMap)
	addAll(p, "NetworkPolicy", validation.IsDNS1123Subdomain, objs.NetworkPolicies, &p.objs.networkPolicies, validateNetworkPolicy)
	addAll(p, "AuthorizationPolicy", validation.IsDNS1123Subdomain, objs.AuthorizationPolicies, &p.objs.authorizationPolicies, validateAuthorizationPolicy)
	addAll(p, "ExternalService", validation.IsDNS1123Subdomain, objs.ExternalServices, &p.objs.externalServices, validateExternalService)
	for _, w := range objs.Pods {
		p.kube.pods[[2]string{w.Namespace, w.Name}] = true
		p.kube.workloads = append(p.kube.workloads, w)
	}
	st := p.build()
	return st, p.errs
}

// kubeMode is what differs when the objects come from Kubernetes rather
// than from a file: pods are workloads whose endpoints come from
// EndpointSlices.
type kubeMode struct {
	workloads []model.Workload
	pods      map[[2]string]bool // namespace, name
}

// isPod reports whether w is a pod of the Kubernetes registry.
func (p *parser) isPod(w model.Workload) bool {
	return p.kube != nil && p.kube.pods[[2]string{w.Namespace, w.Name}]
}

// podOf returns the pod workload an EndpointSlice endpoint refers to.
func (p *parser) podOf(ep discoveryv1.Endpoint, ns string) (model.Workload, bool) {
	if p.kube == nil || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
		return model.Workload{}, false
	}
	if ep.TargetRef.Namespace != "" {
		ns = ep.TargetRef.Namespace
	}
	if !p.kube.pods[[2]string{ns, ep.TargetRef.Name}] {
		return model.Workload{}, false
	}
	for _, w := range p.kube.workloads {
		if w.Namespace == ns && w.Name == ep.TargetRef.Name {
			return w, true
		}
	}
	return model.Workload{}, false
}

// addAll runs the per-object checks Parse runs on each document and keeps
// the objects that pass.
func addAll[T any, PT interface {
	*T
	metav1.Object
}](p *parser, kindName string, nameCheck func(string) []string, in []PT, out *[]decoded[T], validate func(*parser, *document, *T)) {
	for _, obj := range in {
		meta := metav1.Object(obj)
		if meta.GetNamespace() == "" {
			meta.SetNamespace(metav1.NamespaceDefault)
		}
		d := &document{object: kindName + " " + meta.GetNamespace() + "/" + meta.GetName()}
		ok := p.validateMeta(d, kindName, meta, nameCheck)
		before := len(p.errs)
		validate(p, d, (*T)(obj))
		if ok && len(p.errs) == before {
			*out = append(*out, decoded[T]{doc: d, obj: (*T)(obj)})
		}
	}
}
