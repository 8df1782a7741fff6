package file

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// objects holds the decoded objects of a file, by kind, in file order.
// Adding a kind: a slice here, an entry in knownKinds with its validate
// function, and its use in build.
type objects struct {
	services        []decoded[corev1.Service]
	endpointSlices  []decoded[discoveryv1.EndpointSlice]
	workloadEntries []decoded[v1alpha1.WorkloadEntry]
	httpRoutes      []decoded[gwv1.HTTPRoute]
	trafficPolicies []decoded[v1alpha1.TrafficPolicy]
	namespaces      []decoded[corev1.Namespace]
	configMaps      []decoded[corev1.ConfigMap]

	networkPolicies       []decoded[networkingv1.NetworkPolicy]
	authorizationPolicies []decoded[v1alpha1.AuthorizationPolicy]
	externalServices      []decoded[v1alpha1.ExternalService]
}

// decoded is one object and the document it came from (for error lines).
type decoded[T any] struct {
	doc *document
	obj *T
}

// kind is one apiVersion/kind the file registry reads.
type kind struct {
	apiVersion string
	kind       string
	// decode decodes and adds the document's object; it returns the
	// object and whether it was added (it passed every check).
	decode func(p *parser, d *document, data []byte) (any, bool)
	// add runs the checks on an object decode returned before (the
	// same document text: see docMemo) and adds it.
	add func(p *parser, d *document, obj any) bool
}

// knownKinds is the table of every kind a mesh file may hold.
func knownKinds() []kind {
	return []kind{
		register("networking.k8s.io/v1", "NetworkPolicy", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[networkingv1.NetworkPolicy] { return &o.networkPolicies }, validateNetworkPolicy),
		register(v1alpha1.SchemeGroupVersion.String(), "AuthorizationPolicy", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[v1alpha1.AuthorizationPolicy] { return &o.authorizationPolicies }, validateAuthorizationPolicy),
		register(v1alpha1.SchemeGroupVersion.String(), "ExternalService", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[v1alpha1.ExternalService] { return &o.externalServices }, validateExternalService),
		register("v1", "Service", validation.IsDNS1035Label,
			func(o *objects) *[]decoded[corev1.Service] { return &o.services }, validateService),
		register("discovery.k8s.io/v1", "EndpointSlice", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[discoveryv1.EndpointSlice] { return &o.endpointSlices }, validateEndpointSlice),
		register(v1alpha1.SchemeGroupVersion.String(), "WorkloadEntry", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[v1alpha1.WorkloadEntry] { return &o.workloadEntries }, validateWorkloadEntry),
		register(gwv1.GroupVersion.String(), "HTTPRoute", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[gwv1.HTTPRoute] { return &o.httpRoutes }, validateHTTPRoute),
		register(v1alpha1.SchemeGroupVersion.String(), "TrafficPolicy", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[v1alpha1.TrafficPolicy] { return &o.trafficPolicies }, validateTrafficPolicy),
		register("v1", "Namespace", validation.IsDNS1123Label,
			func(o *objects) *[]decoded[corev1.Namespace] { return &o.namespaces }, validateNamespace),
		register("v1", "ConfigMap", validation.IsDNS1123Subdomain,
			func(o *objects) *[]decoded[corev1.ConfigMap] { return &o.configMaps }, validateConfigMap),
	}
}

func knownKindList() string {
	var names []string
	for _, k := range knownKinds() {
		names = append(names, k.apiVersion+" "+k.kind)
	}
	return strings.Join(names, ", ")
}

// register builds the kind entry for a Go type: strict decoding, the checks
// every object gets (metadata, duplicates), then the kind's own validate.
func register[T any, PT interface {
	*T
	metav1.Object
}](apiVersion, kindName string, nameCheck func(string) []string, list func(*objects) *[]decoded[T], validate func(*parser, *document, *T)) kind {
	add := func(p *parser, d *document, obj *T) bool {
		meta := PT(obj)
		if meta.GetNamespace() == "" {
			meta.SetNamespace(metav1.NamespaceDefault)
		}
		d.object = kindName + " " + meta.GetNamespace() + "/" + meta.GetName()
		ok := p.validateMeta(d, kindName, meta, nameCheck)
		before := len(p.errs)
		validate(p, d, obj)
		if ok && len(p.errs) == before {
			*list(&p.objs) = append(*list(&p.objs), decoded[T]{doc: d, obj: obj})
			return true
		}
		return false
	}
	return kind{
		apiVersion: apiVersion, kind: kindName,
		decode: func(p *parser, d *document, data []byte) (any, bool) {
			obj := new(T)
			if !p.decodeStrict(d, data, obj) {
				return nil, false
			}
			return obj, add(p, d, obj)
		},
		add: func(p *parser, d *document, obj any) bool { return add(p, d, obj.(*T)) },
	}
}

func (p *parser) validateMeta(d *document, kindName string, meta metav1.Object, nameCheck func(string) []string) bool {
	before := len(p.errs)
	if meta.GetName() == "" {
		p.errorf(d, "metadata.name", "required")
	} else if msgs := nameCheck(meta.GetName()); len(msgs) > 0 {
		p.errorf(d, "metadata.name", "invalid name %q: %s", meta.GetName(), strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(meta.GetNamespace()); len(msgs) > 0 {
		p.errorf(d, "metadata.namespace", "invalid namespace %q: %s", meta.GetNamespace(), strings.Join(msgs, "; "))
	}
	p.fieldErrors(d, metav1validation.ValidateLabels(meta.GetLabels(), field.NewPath("metadata", "labels")))
	if len(p.errs) > before {
		return false
	}
	key := kindName + " " + meta.GetNamespace() + "/" + meta.GetName()
	if first, dup := p.seen[key]; dup {
		p.errorf(d, "metadata.name", "duplicate %s %s/%s (first declared on line %d)", kindName, meta.GetNamespace(), meta.GetName(), first.line("metadata.name"))
		return false
	}
	p.seen[key] = d
	return true
}

// fieldErrors reports apimachinery validation errors.
func (p *parser) fieldErrors(d *document, errs field.ErrorList) {
	for _, e := range errs {
		p.errorf(d, e.Field, "%s", e.ErrorBody())
	}
}

func checkPort(port int32) string {
	switch {
	case port == 0:
		return "required"
	case port < 0 || port > 65535:
		return fmt.Sprintf("port %d is not in 1-65535", port)
	}
	return ""
}

func protocolOf(p corev1.Protocol) (corev1.Protocol, bool) {
	switch p {
	case "":
		return corev1.ProtocolTCP, true
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return p, true
	}
	return p, false
}
