// Package netnsharness plays the kubelet's network part for tests that
// need real transparent capture: it makes a private "hub" network
// namespace holding a bridge (10.250.<k>.1/24, k random per run; the second
// octet and the namespace name prefix are options), and one
// network namespace per pod with a veth onto that bridge, its address
// 10.250.<k>.<n> and a default route via the hub. Nothing is created in,
// or routed through, the host's own network namespace; every address
// exists only inside namespaces the harness made.
//
// Processes run inside a namespace with `ip netns exec` (optionally as
// another uid through setpriv, e.g. the sidecar as mesh.ProxyUID), each in
// its own process group with SIGKILL as parent-death signal. A pod's
// /etc/hosts is /etc/netns/<ns>/hosts (ip netns exec bind-mounts it), which
// is how apps resolve Service names to ClusterIPs without DNS. NS.Dial
// opens a socket inside a namespace from the test process itself (a
// goroutine locked to an OS thread that setns()es there and back), so a
// test's HTTP client is an app in that pod and its traffic is captured.
//
// Cleanup (t.Cleanup, also after a failure): processes killed by group,
// namespaces deleted (their veths and the bridge go with them), the
// /etc/netns directories removed.
//
// Require skips the test unless it runs as root; with WEFT_REQUIRE_NETNS
// set (or as root) a missing tool is a failure, never a skip.
package netnsharness
