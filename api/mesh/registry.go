package mesh

// Ports a workload must not use: the sidecar binds every port of this range
// on the workload's address (in local mode) or in its network namespace, so
// a registry rejects a workload port or a Service targetPort inside it.
const (
	ReservedPortFirst = PortAdmin  // 15000
	ReservedPortLast  = PortHealth // 15020
)

// IsReservedPort reports whether port is in the sidecar's reserved range.
func IsReservedPort(port uint32) bool {
	return port >= ReservedPortFirst && port <= ReservedPortLast
}
