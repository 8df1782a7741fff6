package file

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
)

// validateNamespace checks a v1 Namespace: only its annotations matter to
// the mesh (mesh.AnnotationMTLSMode).
func validateNamespace(p *parser, d *document, ns *corev1.Namespace) {
	validateMTLSAnnotation(p, d, ns.Annotations)
}

// validateMTLSAnnotation checks a weft.dev/mtls-mode annotation, if any.
func validateMTLSAnnotation(p *parser, d *document, annotations map[string]string) {
	v, ok := annotations[mesh.AnnotationMTLSMode]
	if !ok {
		return
	}
	switch meshconfig.MTLSMode(v) {
	case meshconfig.MTLSStrict, meshconfig.MTLSPermissive:
	default:
		p.errorf(d, "metadata.annotations["+mesh.AnnotationMTLSMode+"]", "%q is not %s or %s", v, meshconfig.MTLSStrict, meshconfig.MTLSPermissive)
	}
}

// namespaces are the declared Namespaces of the model.
func (p *parser) namespaces() []model.Namespace {
	out := make([]model.Namespace, 0, len(p.objs.namespaces))
	for _, n := range p.objs.namespaces {
		out = append(out, model.Namespace{Name: n.obj.Name, Annotations: n.obj.Annotations})
	}
	return out
}
