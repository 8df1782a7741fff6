package launch

// WithControlPlaneArgs adds flags to the control plane's command line, e.g.
// --outbound-policy=ALLOW_ANY (docs/architecture.md, Egress contract).
// Per-sidecar flags (the egress gateway's --mode and --resolve) come from
// each WorkloadEntry's mesh.AnnotationLocalSidecarArgs.
func WithControlPlaneArgs(args ...string) Option {
	return func(c *config) { c.controlPlaneArgs = append(c.controlPlaneArgs, args...) }
}
