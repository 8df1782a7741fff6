package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/cmd/weftctl/internal/debugclient"
)

func newProxyStatusCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "proxy-status",
		Short: "List connected proxies with the last ACKed version or NACK reason per resource type",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := debugclient.New(addr)
			if err != nil {
				return err
			}
			ps, err := c.Proxies(cmd.Context())
			if err != nil {
				return err
			}
			return debugclient.WriteStatusTable(cmd.OutOrStdout(), ps, time.Now())
		},
	}
	cmd.Flags().StringVar(&addr, "control-plane", defaultDebugAddress(), "the control plane's debug address (host:port)")
	return cmd
}

func newConfigDumpCommand() *cobra.Command {
	var addr, namespace string
	cmd := &cobra.Command{
		Use:   "config-dump <proxy>",
		Short: "Print one proxy's resources (listeners, routes, clusters, endpoints) as JSON",
		Long: "Print the resources the control plane serves to one proxy. <proxy> is its node id,\n" +
			"<workload>.<namespace>, or the workload's name with --namespace.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if namespace != "" {
				id = mesh.NodeID(id, namespace)
			}
			c, err := debugclient.New(addr)
			if err != nil {
				return err
			}
			dump, err := c.ConfigDump(cmd.Context(), id)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(dump); err != nil {
				return fmt.Errorf("config-dump: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "control-plane", defaultDebugAddress(), "the control plane's debug address (host:port)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the workload named by <proxy>")
	return cmd
}
