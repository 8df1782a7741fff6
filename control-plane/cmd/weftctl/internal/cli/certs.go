package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/control-plane/cmd/weftctl/internal/debugclient"
)

func newCertsCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "List each proxy's current certificate: identity, serial, validity (never a key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := debugclient.New(addr)
			if err != nil {
				return err
			}
			certs, err := c.Certs(cmd.Context())
			if err != nil {
				return err
			}
			return debugclient.WriteCertsTable(cmd.OutOrStdout(), certs, time.Now())
		},
	}
	cmd.Flags().StringVar(&addr, "control-plane", defaultDebugAddress(), "the control plane's debug address (host:port)")
	return cmd
}

func newCACommand() *cobra.Command {
	ca := &cobra.Command{Use: "ca", Short: "Operate the mesh CA"}
	var (
		addr, step string
		force      bool
	)
	rotate := &cobra.Command{
		Use:   "rotate-root --step add|activate|remove",
		Short: "Rotate the mesh's root of trust without downtime, one step at a time",
		Long: "Replace the CA's root in three steps (see control-plane/ca's documentation):\n" +
			"  add       generate a new root and add it to the trust bundle (pushed to every sidecar);\n" +
			"            wait until every proxy has ACKed SDS (weftctl proxy-status) or one certificate lifetime\n" +
			"  activate  sign with the new root (the control plane's own certificate moves at once);\n" +
			"            wait one certificate lifetime, until every certificate comes from the new root (weftctl certs)\n" +
			"  remove    drop the old root from the bundle; refused while a proxy still holds a certificate from it\n" +
			"            or while an added root waits to be activated (--force overrides; it then abandons the rotation)\n" +
			"The control plane must use --ca-dir, and serves this on its loopback-only debug address.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := debugclient.New(addr)
			if err != nil {
				return err
			}
			body, err := c.RotateRoot(cmd.Context(), step, force)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, body, "", "  "); err != nil {
				return fmt.Errorf("ca rotate-root: %w", err)
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	rotate.Flags().StringVar(&addr, "control-plane", defaultDebugAddress(), "the control plane's debug address (host:port)")
	rotate.Flags().StringVar(&step, "step", "", "add, activate or remove")
	rotate.Flags().BoolVar(&force, "force", false, "remove even while proxies hold certificates from the old root")
	_ = rotate.MarkFlagRequired("step")
	ca.AddCommand(rotate)
	return ca
}
