// Package xdssim is the control plane's scale benchmark (issue 11, item 3;
// `make bench-xds`, cmd/weft-xdssim).
//
// It generates a file registry (MeshSpec: Services over namespaces, each
// backed by EndpointsPerService WorkloadEntries, optionally an egress
// NetworkPolicy per namespace that scopes each proxy's config), makes a CA
// directory and one join token per simulated proxy (as control-plane/launch
// does for weftctl up), starts the real weft-control-plane binary on a
// random loopback address with --join-tokens, and runs N clients.
//
// # Clients
//
// Each client is one ADS stream (SotW or delta) carrying its own bearer
// token and node (node.id <workload>.<namespace>, metadata like the
// sidecar's), over TLS 1.3 verified against the CA bundle with the control
// plane's SPIFFE ID checked. It subscribes like weft-sidecar (CDS and LDS
// wildcard, EDS for the outbound clusters, RDS "outbound") and ACKs every
// response at once. To stay lean it never unmarshals resources: cluster
// names come from the wire (field 1), versions from the response. One
// goroutine per client owns its stream (receive, then ACK on the same
// goroutine); its counters are atomics the driver reads. Streams share
// Config.Conns gRPC connections (a real sidecar has its own; sharing keeps
// the simulator's TLS cost out of the measurement).
//
// # What it measures
//
//   - connect: time until every client ACKed CDS, EDS, LDS and RDS once; the
//     control plane's CPU (/proc/<pid>/stat) and RSS (/proc/<pid>/status)
//     before and after, its live heap (HeapAlloc after a forced GC,
//     /debug/pprof/heap?gc=1) and goroutine stacks (StackInuse) before
//     and after, and its RSS again after the single changes. With
//     Config.ProfileDir it also saves the control plane's heap profile at
//     that moment, another after the single changes (what they allocated:
//     its alloc_space less the first's) and CPU profiles of the churn and
//     the storm.
//   - single changes: one WorkloadEntry's address changes in the file (one
//     endpoint change); the latency of a proxy is file write -> its ACK of
//     the next EDS version; affected = proxies that got a new EDS version
//     (the set is final once it stopped growing for 3 s); bytes = EDS bytes
//     each affected proxy received (SotW re-sends every assignment, delta
//     only the changed one).
//   - churn: ChurnRate changes per second for ChurnFor; EDS pushes per
//     proxy against changes (coalescing) and, each second, the lag of 50
//     sampled proxies (age of the oldest change written after their last
//     new EDS version), which stays flat when pushes keep up.
//   - reconnect storm: every stream and connection is closed; once the
//     control plane counts 0 proxies, all clients reconnect at once; time
//     until all ACKed their config again.
//
// Memory per proxy, the figure issue 11's target (< 100 KB) is judged
// on, is RSS, not heap: (VmRSS − idle VmRSS) / proxies, where the idle
// VmRSS is read once the control plane is healthy (registry loaded and
// pushed) and before the first proxy connects, and the connected VmRSS
// 1 s after the last proxy ACKed its first config (and again after the
// single changes). The idle figure includes heap the runtime has freed
// but not yet returned since the start (parsing the mesh file), which
// proxies later reuse, so the report also gives VmRSS / proxies with
// nothing subtracted (an upper bound), the anonymous part (RssAnon)
// and the peak of the connect (VmHWM, reset before the first connect).
//
// Every wait is bounded by Config.Settle; Run stops the control plane and
// every client before it returns.
package xdssim
