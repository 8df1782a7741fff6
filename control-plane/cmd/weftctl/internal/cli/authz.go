package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"

	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/api/authz"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
	"github.com/weftmesh/weft/control-plane/translate"
)

// `weftctl authz check` and `weftctl authz lint`: the decision comes from
// the configuration the control plane would push (translate.Build on the
// mesh file) evaluated by api/authz, the evaluator the sidecars run, so
// the answer is the sidecar's (docs/architecture.md, Authorization
// contract).

// errDenied makes `authz check` exit 1 when any endpoint denies.
var errDenied = errors.New("denied")

func newAuthzCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "authz", Short: "Check and lint authorization policies (NetworkPolicy, AuthorizationPolicy)"}
	cmd.AddCommand(newAuthzCheckCommand(), newAuthzLintCommand())
	return cmd
}

type authzCheckFlags struct {
	file, from, to, method, path, trustDomain string
	port                                      uint32
	headers                                   []string
}

func newAuthzCheckCommand() *cobra.Command {
	var f authzCheckFlags
	cmd := &cobra.Command{
		Use:   "check -f mesh.yaml --from <workload>[.<ns>] --to <service>[.<ns>]",
		Short: "Say whether a workload may call a service, and which policy and rule decided",
		Long: `check translates the source and every destination endpoint as the control
plane does and runs the sidecars' evaluator (api/authz) on the result: the
source's egress allowlist and scope, then the destination's inbound RBAC
filters for the endpoint's port, with the source's SPIFFE ID and address.
It prints ALLOW or DENY per endpoint with the filter and policy/rule that
decided, and exits 1 when any endpoint denies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuthzCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "mesh file (required)")
	fl.StringVar(&f.from, "from", "", "source WorkloadEntry: <name> or <name>.<namespace> (required)")
	fl.StringVar(&f.to, "to", "", "destination Service: <name> or <name>.<namespace> (default: the source's namespace)")
	fl.Uint32Var(&f.port, "port", 0, "service port (default: the service's first TCP port)")
	fl.StringVar(&f.method, "method", http.MethodGet, "request method")
	fl.StringVar(&f.path, "path", "/", "request path (normalized as the sidecar does)")
	fl.StringArrayVar(&f.headers, "header", nil, "request header name=value (repeatable)")
	fl.StringVar(&f.trustDomain, "trust-domain", mesh.DefaultTrustDomain, "the mesh's trust domain")
	for _, r := range []string{"file", "from", "to"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newAuthzLintCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "lint -f mesh.yaml",
		Short: "Validate a mesh file's policies and print warnings (e.g. egress without DNS)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseMeshFile(path)
			if err != nil {
				return err
			}
			for _, w := range st.Authz.Warnings {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d NetworkPolicies, %d AuthorizationPolicies, %d warnings\n",
				len(st.Authz.NetworkPolicies), len(st.Authz.AuthorizationPolicies), len(st.Authz.Warnings))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "file", "f", "", "mesh file (required)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func parseMeshFile(path string) (model.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return model.State{}, fmt.Errorf("authz: %w", err)
	}
	st, err := file.Parse(path, data)
	if err != nil {
		return model.State{}, fmt.Errorf("authz: invalid mesh file:\n%w", err)
	}
	return st, nil
}

func splitNS(s, defNS string) (string, string) {
	if name, ns, ok := strings.Cut(s, "."); ok {
		return name, ns
	}
	return s, defNS
}

func runAuthzCheck(out, errOut io.Writer, f authzCheckFlags) error {
	st, err := parseMeshFile(f.file)
	if err != nil {
		return err
	}
	for _, w := range st.Authz.Warnings {
		fmt.Fprintln(errOut, "warning:", w)
	}
	name, ns := splitNS(f.from, "")
	var src *model.Workload
	for i, w := range st.Workloads {
		if w.Name == name && (ns == "" || w.Namespace == ns) {
			if src != nil {
				return fmt.Errorf("authz: --from %q is ambiguous: give <name>.<namespace>", f.from)
			}
			src = &st.Workloads[i]
		}
	}
	if src == nil {
		return fmt.Errorf("authz: no WorkloadEntry %q", f.from)
	}
	svcName, svcNS := splitNS(f.to, src.Namespace)
	svc, ok := st.Service(svcNS, svcName)
	if !ok {
		return fmt.Errorf("authz: no Service %s/%s", svcNS, svcName)
	}
	var sp *model.ServicePort
	for i, p := range svc.Ports {
		if p.Protocol == model.ProtocolTCP && (f.port == 0 || p.Port == f.port) {
			sp = &svc.Ports[i]
			break
		}
	}
	if sp == nil {
		return fmt.Errorf("authz: Service %s/%s has no TCP port %d", svcNS, svcName, f.port)
	}
	hdr := http.Header{}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			return fmt.Errorf("authz: --header %q is not name=value", h)
		}
		hdr.Add(k, v)
	}
	mc := meshconfig.Default()
	mc.TrustDomain = f.trustDomain
	authority := svc.Name + "." + svc.Namespace + ":" + strconv.FormatUint(uint64(sp.Port), 10)
	fmt.Fprintf(out, "%s %s%s from %s (%s) to %s\n", f.method, authority, f.path, src.NodeID(), src.Identity(mc.TrustDomain), authority)

	// The source side: its outbound listener's egress filter and scope.
	srcRes, err := translate.Build(st, *src, mc)
	if err != nil {
		return err
	}
	egress, scope, err := outboundView(srcRes)
	if err != nil {
		return err
	}
	host := mesh.ServiceHost(svc.Name, svc.Namespace, mc.ClusterDomain)
	cluster := mesh.OutboundClusterName(sp.Port, host)
	if d := egress.Evaluate(&authz.Request{Source: addr(src.Address), Method: f.method, Authority: authority, Path: f.path, Headers: hdr}); !d.Allowed {
		fmt.Fprintf(out, "DENY   egress of %s: %s decided by %s\n", src.NodeID(), d.Filter, d.Policy)
		return errDenied
	}
	path, perr := authz.NormalizePath(f.path)
	denied := false
	if len(sp.Endpoints) == 0 {
		fmt.Fprintln(out, "no endpoints")
	}
	for _, ep := range sp.Endpoints {
		where := fmt.Sprintf("%s:%d", ep.Address, ep.Port)
		if ep.Sidecar() {
			where = mesh.NodeID(ep.Workload, ep.Namespace) + " " + where
		}
		if !scope[cluster+"|"+ep.Address] {
			fmt.Fprintf(out, "DENY   %s: not in %s's egress scope (NetworkPolicy egress)\n", where, src.NodeID())
			denied = true
			continue
		}
		if !ep.Sidecar() {
			fmt.Fprintf(out, "ALLOW  %s: no sidecar there (no inbound policy)\n", where)
			continue
		}
		if perr != nil {
			fmt.Fprintf(out, "DENY   %s: 400: %v\n", where, perr)
			denied = true
			continue
		}
		dst, ok := st.Workload(mesh.NodeID(ep.Workload, ep.Namespace))
		if !ok {
			return fmt.Errorf("authz: endpoint workload %s not found", ep.Workload)
		}
		res, err := translate.Build(st, dst, mc)
		if err != nil {
			return err
		}
		engine, err := inboundEngine(res, ep.Port)
		if err != nil {
			return err
		}
		d := engine.Evaluate(&authz.Request{
			Principal: src.Identity(mc.TrustDomain), Source: addr(src.Address), DestinationIP: addr(ep.Address),
			DestinationPort: ep.Port, Method: f.method, Authority: authority, Path: path, Headers: hdr,
		})
		switch {
		case !d.Allowed:
			denied = true
			fmt.Fprintf(out, "DENY   %s: %s decided by %s\n", where, d.Filter, d.Policy)
		case d.Policy == "":
			fmt.Fprintf(out, "ALLOW  %s: no ALLOW policy applies\n", where)
		default:
			fmt.Fprintf(out, "ALLOW  %s: %s allowed by %s\n", where, d.Filter, d.Policy)
		}
		if d.Audit != "" {
			fmt.Fprintf(out, "       audited by %s\n", d.Audit)
		}
	}
	if denied {
		return errDenied
	}
	return nil
}

func addr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// engineOf compiles the RBAC filters of a listener filter chain's HCM.
func engineOf(m *hcm.HttpConnectionManager) (*authz.Engine, error) {
	var fs []authz.Filter
	for _, hf := range m.GetHttpFilters() {
		c := &rbacfilter.RBAC{}
		if hf.GetTypedConfig().MessageIs(c) {
			if err := hf.GetTypedConfig().UnmarshalTo(c); err != nil {
				return nil, fmt.Errorf("authz: %w", err)
			}
			fs = append(fs, authz.Filter{Name: hf.GetName(), Config: c})
		}
	}
	return authz.Compile(fs)
}

func inboundEngine(res *translate.Resources, port uint32) (*authz.Engine, error) {
	for _, l := range res.Listeners {
		if l.GetName() != mesh.ListenerInbound {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
				continue
			}
			m := &hcm.HttpConnectionManager{}
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(m); err != nil {
				return nil, fmt.Errorf("authz: %w", err)
			}
			return engineOf(m)
		}
	}
	return nil, fmt.Errorf("authz: no inbound chain for port %d", port)
}

// outboundView returns the outbound listener's engine and the scope:
// "<cluster>|<endpoint ip>" for every endpoint the proxy receives.
func outboundView(res *translate.Resources) (*authz.Engine, map[string]bool, error) {
	var engine *authz.Engine
	for _, l := range res.Listeners {
		if l.GetName() != mesh.ListenerOutbound || len(l.GetFilterChains()) == 0 {
			continue
		}
		m := &hcm.HttpConnectionManager{}
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(m); err != nil {
			return nil, nil, fmt.Errorf("authz: %w", err)
		}
		e, err := engineOf(m)
		if err != nil {
			return nil, nil, err
		}
		engine = e
	}
	if engine == nil {
		return nil, nil, errors.New("authz: no outbound listener")
	}
	scope := map[string]bool{}
	for _, cla := range res.Endpoints {
		for _, le := range cla.GetEndpoints() {
			for _, e := range le.GetLbEndpoints() {
				scope[cla.GetClusterName()+"|"+e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = true
			}
		}
	}
	return engine, scope, nil
}
