// Package mesh holds every well-known name of Weft: ports, labels,
// annotations, the SPIFFE ID format, xDS resource and cluster names, and the
// defaults that the control plane, the sidecar, the injector and the Helm
// chart share. Nothing else in the repository spells these values out; import
// them from here.
package mesh
