package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/launch"
)

type upFlags struct {
	file           string
	binDir         string
	runDir         string
	controlPlaneIP string
	logLevel       string
	quiet          bool
	readyTimeout   time.Duration
	stopTimeout    time.Duration
	certLifetime   time.Duration
	mtlsMode       string
	insecureXDS    bool
}

func newUpCommand() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up -f <mesh.yaml>",
		Short: "Run a mesh on loopback: the control plane, a sidecar per WorkloadEntry, and the apps",
		Long: "Run the control plane, one sidecar per WorkloadEntry on the entry's address and the app\n" +
			"each entry names in its " + mesh.AnnotationLocalCommand + " annotation, until interrupted.\n" +
			"The control plane follows the file: edit it and the mesh changes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd.Context(), cmd.OutOrStdout(), f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "mesh file (multi-document YAML)")
	fl.StringVar(&f.binDir, "bin-dir", "", "directory with weft-control-plane, weft-sidecar and the apps (default: weftctl's own directory)")
	fl.StringVar(&f.runDir, "run-dir", "", "directory for the processes' log files (default: a new temporary directory)")
	fl.StringVar(&f.controlPlaneIP, "control-plane-ip", mesh.LocalControlPlaneIP, "loopback address the control plane binds its xDS and debug ports on")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level of the control plane and sidecars")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "do not stream the processes' logs (they are still written under the run dir)")
	fl.DurationVar(&f.readyTimeout, "ready-timeout", mesh.DefaultLocalReadyTimeout, "how long to wait for each process to become ready")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", mesh.DefaultLocalStopTimeout, "how long to wait after SIGTERM before SIGKILL")
	fl.DurationVar(&f.certLifetime, "cert-lifetime", mesh.DefaultCertLifetime, "lifetime of the workload certificates the control plane's CA issues")
	fl.StringVar(&f.mtlsMode, "mtls-mode", string(meshconfig.MTLSStrict), "mesh-wide mTLS mode: STRICT or PERMISSIVE")
	fl.BoolVar(&f.insecureXDS, "insecure-xds", false, "run the xDS channel in plaintext without credentials (development only)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func runUp(ctx context.Context, out io.Writer, f upFlags) error {
	if f.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("up: --bin-dir: %w", err)
		}
		f.binDir = filepath.Dir(exe)
	}
	opts := []launch.Option{
		launch.WithControlPlaneIP(f.controlPlaneIP),
		launch.WithLogLevel(f.logLevel),
		launch.WithReadyTimeout(f.readyTimeout),
		launch.WithStopTimeout(f.stopTimeout),
		launch.WithRunDir(f.runDir),
		launch.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	if !f.quiet {
		opts = append(opts, launch.WithOutput(os.Stderr))
	}
	mode := meshconfig.MTLSMode(strings.ToUpper(f.mtlsMode))
	if mode != meshconfig.MTLSStrict && mode != meshconfig.MTLSPermissive {
		return fmt.Errorf("up: --mtls-mode=%q is not STRICT or PERMISSIVE", f.mtlsMode)
	}
	opts = append(opts, launch.WithCertLifetime(f.certLifetime), launch.WithMTLSMode(mode))
	if f.insecureXDS {
		opts = append(opts, launch.WithInsecureXDS())
	}
	m, err := launch.Start(ctx, f.file, f.binDir, opts...)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	printMesh(out, m)
	waitErr := m.Wait(ctx)
	if waitErr != nil {
		fmt.Fprintf(out, "\n%v\nstopping everything\n", waitErr)
	} else {
		fmt.Fprintln(out, "\nstopping everything")
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*f.stopTimeout+time.Second)
	defer cancel()
	stopErr := m.Stop(stopCtx)
	if stopErr == nil {
		fmt.Fprintln(out, "stopped")
	}
	return errors.Join(waitErr, stopErr)
}

func printMesh(out io.Writer, m *launch.Mesh) {
	cp := m.ControlPlane()
	fmt.Fprintf(out, "\ncontrol plane  xDS %s  debug http://%s  (weftctl proxy-status --control-plane %s)\n", cp.XDSAddress, cp.DebugAddress, cp.DebugAddress)
	if m.Secure() {
		fmt.Fprintf(out, "identity       CA %s  trust bundle %s  (weftctl certs --control-plane %s)\n\n", m.CADir(), m.TrustBundleFile(), cp.DebugAddress)
	} else {
		fmt.Fprintf(out, "identity       none: xDS in plaintext (--insecure-xds)\n\n")
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tAPP\tPROXY (outbound)\tINBOUND\tADMIN")
	for _, w := range m.Workloads() {
		app := strings.Join(w.AppAddresses(), ",")
		if len(w.Command) == 0 {
			app = "(sidecar only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\thttp://%s\thttp://%s/config_dump\n", w.NodeID(), app, w.ProxyURL(), w.InboundAddress(), w.AdminAddress())
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nlogs: %s\nmesh file: %s (edit it to change the mesh)\nready; press Ctrl-C to stop\n", m.RunDir(), m.MeshFile())
}
