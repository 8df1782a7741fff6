package file

import (
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

// The mesh ConfigMap (docs/architecture.md, "Observability contract"): a
// v1 ConfigMap named mesh.MeshConfigMapName in mesh.ControlPlaneNamespace
// whose data[mesh.MeshConfigMapKey] is a YAML fragment of meshconfig.Config
// with only tracing and accessLog. Other ConfigMaps are accepted and
// ignored (a Kubernetes namespace holds many).

// validateConfigMap checks the mesh ConfigMap; others pass.
func validateConfigMap(p *parser, d *document, cm *corev1.ConfigMap) {
	if !isMeshConfigMap(cm) {
		return
	}
	if _, err := parseTelemetry(cm); err != nil {
		p.errorf(d, "data."+mesh.MeshConfigMapKey, "%v", err)
	}
}

func isMeshConfigMap(cm *corev1.ConfigMap) bool {
	return cm.Name == mesh.MeshConfigMapName && cm.Namespace == mesh.ControlPlaneNamespace
}

// parseTelemetry reads the ConfigMap's mesh key strictly (unknown keys,
// including the flag-only ones, are errors).
func parseTelemetry(cm *corev1.ConfigMap) (*meshconfig.Telemetry, error) {
	t := meshconfig.Telemetry{}
	if err := sigsyaml.UnmarshalStrict([]byte(cm.Data[mesh.MeshConfigMapKey]), &t); err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// telemetry is the mesh ConfigMap's settings, or nil without one.
func (p *parser) telemetry() *meshconfig.Telemetry {
	for _, cm := range p.objs.configMaps {
		if isMeshConfigMap(cm.obj) {
			t, err := parseTelemetry(cm.obj)
			if err != nil {
				return nil // reported by validateConfigMap
			}
			return t
		}
	}
	return nil
}
