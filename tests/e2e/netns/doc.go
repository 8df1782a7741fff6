// Package netns proves transparent capture end to end: real network
// namespaces (tests/netnsharness), the real `weft-sidecar init` iptables
// rules in each pod, the real sidecar as uid 1337 with --capture, the real
// shop app, and the real control plane with the file registry in the hub
// namespace. Apps make plain requests to Service names (via the pod's
// /etc/hosts -> ClusterIP) and ClusterIPs; nothing is configured as a
// proxy. TestDNSProxy adds the opt-in DNS capture: glibc lookups in a pod
// (search path, UDP and TCP) answered by the sidecar's DNS proxy for mesh
// names, forwarded to an upstream resolver in the hub for the rest, and
// never captured for the proxy's own uid. Root only: it skips otherwise
// unless WEFT_REQUIRE_NETNS is set.
package netns
