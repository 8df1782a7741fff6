package mesh

import "time"

// Local mode: `weftctl up`, the shop demo and tests/e2e/local run the control
// plane, one sidecar per WorkloadEntry and each entry's app as processes on
// loopback. These names are shared by the launcher, the CLI and the Makefile.
const (
	// AnnotationLocalCommand on a WorkloadEntry holds the command line of the
	// entry's app in local mode. It is a Go text/template expanded with the
	// entry (see control-plane/launch: {{.Address}}, {{.Name}},
	// {{.Namespace}}, {{.ServiceAccount}}, {{.ProxyURL}}, {{.BinDir}},
	// {{.Port "http"}}), then split on white space (no shell is involved;
	// single and double quotes group words). An entry without it gets a
	// sidecar only.
	AnnotationLocalCommand = "local.weft.dev/command"

	// LocalControlPlaneIP is the loopback address the control plane binds in
	// local mode unless told otherwise.
	LocalControlPlaneIP = "127.0.0.1"

	// BinaryControlPlane, BinarySidecar and BinaryCLI are the file names of
	// Weft's binaries in a bin directory.
	BinaryControlPlane = "weft-control-plane"
	BinarySidecar      = "weft-sidecar"
	BinaryCLI          = "weftctl"

	// DefaultLocalReadyTimeout bounds how long the launcher waits for the
	// control plane, a sidecar or an app to become ready.
	DefaultLocalReadyTimeout = 30 * time.Second
	// DefaultLocalStopTimeout is how long the launcher waits after SIGTERM
	// before it sends SIGKILL to a process group.
	DefaultLocalStopTimeout = 5 * time.Second
)
