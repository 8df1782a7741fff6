package cli

import (
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/mesh"
)

// NewRoot returns weftctl's root command.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "weftctl",
		Short:         "Run and inspect a Weft mesh",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCommand(), newProxyStatusCommand(), newConfigDumpCommand(), newCertsCommand(), newCACommand(), newAuthzCommand())
	return root
}

// defaultDebugAddress is the local control plane's debug address.
func defaultDebugAddress() string {
	return net.JoinHostPort(mesh.LocalControlPlaneIP, strconv.Itoa(mesh.PortDebug))
}
