package model

import "github.com/weftmesh/weft/api/meshconfig"

// WithTelemetry returns s with the registry's run-time tracing and access
// log settings (nil: the mesh config's flags apply).
func (s State) WithTelemetry(t *meshconfig.Telemetry) State {
	s.Telemetry = t
	return s
}
