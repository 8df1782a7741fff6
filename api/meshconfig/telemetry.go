package meshconfig

import (
	"errors"
	"fmt"
)

// AccessLog configures the sidecars' access logs: one JSON line per
// request on the sidecar's stdout.
type AccessLog struct {
	// Enabled turns access logs on.
	Enabled bool `json:"enabled,omitempty"`
	// SamplingRate in [0,1] of the requests that pass MinStatus; 0 (unset)
	// logs every one.
	SamplingRate float64 `json:"samplingRate,omitempty"`
	// MinStatus logs only responses with a status code at least this
	// (500: errors only); 0 logs all.
	MinStatus uint32 `json:"minStatus,omitempty"`
}

// Telemetry is the part of the mesh config that may change at run time
// (the ConfigMap mesh.MeshConfigMapName).
type Telemetry struct {
	Tracing   Tracing   `json:"tracing,omitzero"`
	AccessLog AccessLog `json:"accessLog,omitzero"`
}

// Validate reports the fields out of range.
func (t Telemetry) Validate() error {
	var errs []error
	if t.Tracing.SamplingRate < 0 || t.Tracing.SamplingRate > 1 {
		errs = append(errs, fmt.Errorf("tracing.samplingRate: %v is not in [0,1]", t.Tracing.SamplingRate))
	}
	if t.AccessLog.SamplingRate < 0 || t.AccessLog.SamplingRate > 1 {
		errs = append(errs, fmt.Errorf("accessLog.samplingRate: %v is not in [0,1]", t.AccessLog.SamplingRate))
	}
	if t.AccessLog.MinStatus > 599 {
		errs = append(errs, fmt.Errorf("accessLog.minStatus: %d is not a status code", t.AccessLog.MinStatus))
	}
	return errors.Join(errs...)
}

// Telemetry returns c's run-time changeable part.
func (c Config) Telemetry() Telemetry { return Telemetry{Tracing: c.Tracing, AccessLog: c.AccessLog} }

// WithTelemetry returns c with t in place of its tracing and access log.
func (c Config) WithTelemetry(t Telemetry) Config {
	c.Tracing, c.AccessLog = t.Tracing, t.AccessLog
	return c
}
