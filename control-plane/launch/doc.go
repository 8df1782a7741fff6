// Package launch runs a Weft mesh as local processes on loopback: the
// control plane, one sidecar per WorkloadEntry of a mesh file, and the app
// each entry names in its mesh.AnnotationLocalCommand annotation. It is the
// engine of `weftctl up`, the shop demo and tests/e2e/local.
//
// Flow: Start reads the mesh file's WorkloadEntries (only to know what to run;
// the control plane's registry is the authority on the file), starts the
// control plane with --registry=file on the file itself and waits for its
// /healthz, then starts every sidecar (--ip and the mesh ports on the entry's
// address) and every app, and waits for each sidecar's /ready and each app's
// ports. Every wait has a deadline and fails early, quoting the end of the
// process's log, when the process exits.
//
// Processes: each child runs in its own process group (so an app's children
// go with it) with SIGKILL as its parent-death signal. Stop sends SIGTERM to
// the apps, then the sidecars, then the control plane, and SIGKILL to any
// group still alive after the stop timeout. KillControlPlane,
// StopControlPlane and StartControlPlane act on the control plane alone, with
// the same addresses and file, so the sidecars can be seen reconnecting.
//
// Identity (security.go): Start makes <run dir>/ca with the mesh CA, one
// join token per workload (hashes for the control plane's --join-tokens,
// each token in a 0600 file for its sidecar's --token-file) and passes the
// sidecars --ca-bundle and --trust-domain; WithCertLifetime and
// WithMTLSMode reach the control plane. It falls back to --insecure-xds
// only when the sidecar binary lacks the flags (WithSecureXDS forbids the
// fallback, WithInsecureXDS forces it).
//
// Egress (egress.go): a WorkloadEntry's mesh.AnnotationLocalSidecarArgs
// adds flags to its sidecar (the egress gateway's --mode=egress-gateway and
// --resolve), and WithControlPlaneArgs to the control plane
// (--outbound-policy).
//
// Output: each process's stdout and stderr go to <run dir>/<name>.log
// (appended across restarts) and, with WithOutput, line by line to a shared
// writer, prefixed with the process's name.
//
// Goroutines: one per process, started by startProcess, waits for the
// process and ends when it exits; Stop therefore leaves none behind.
package launch
