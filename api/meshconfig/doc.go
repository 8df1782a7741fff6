// Package meshconfig holds the mesh-wide settings (trust domain, mTLS mode,
// outbound traffic policy, tracing, defaults) that the control plane reads
// from flags, a file or Helm values and pushes to every sidecar.
package meshconfig
