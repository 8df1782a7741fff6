package launch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/model"
)

// Workload is one WorkloadEntry as the launcher runs it: its sidecar on the
// entry's address and, when the entry has mesh.AnnotationLocalCommand, its app.
type Workload struct {
	Name           string
	Namespace      string
	ServiceAccount string
	// Address is the entry's (loopback) address; the sidecar binds the mesh
	// ports on it and the app its own ports.
	Address string
	// Ports are the entry's named ports.
	Ports map[string]int
	// Command is the app's expanded command line; empty for a sidecar only.
	Command []string
	// SidecarArgs are extra sidecar flags from the entry's
	// mesh.AnnotationLocalSidecarArgs (e.g. --mode=egress-gateway).
	SidecarArgs []string
}

// NodeID is the workload's xDS node id.
func (w Workload) NodeID() string { return mesh.NodeID(w.Name, w.Namespace) }

// ProxyURL is the address of the workload's outbound listener, for use as an
// HTTP proxy (http://<address>:15001).
func (w Workload) ProxyURL() string {
	return "http://" + net.JoinHostPort(w.Address, strconv.Itoa(mesh.PortOutbound))
}

// AdminAddress is the sidecar's admin listener (<address>:15000).
func (w Workload) AdminAddress() string {
	return net.JoinHostPort(w.Address, strconv.Itoa(mesh.PortAdmin))
}

// HealthAddress is the sidecar's health and metrics listener (<address>:15020).
func (w Workload) HealthAddress() string {
	return net.JoinHostPort(w.Address, strconv.Itoa(mesh.PortHealth))
}

// InboundAddress is the sidecar's inbound listener (<address>:15006).
func (w Workload) InboundAddress() string {
	return net.JoinHostPort(w.Address, strconv.Itoa(mesh.PortInbound))
}

// AppAddresses are the app's listening addresses, sorted by port name.
func (w Workload) AppAddresses() []string {
	names := make([]string, 0, len(w.Ports))
	for n := range w.Ports {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, net.JoinHostPort(w.Address, strconv.Itoa(w.Ports[n])))
	}
	return out
}

// commandData is what the command template sees.
type commandData struct {
	Name           string
	Namespace      string
	ServiceAccount string
	Address        string
	ProxyURL       string
	BinDir         string
	ports          map[string]int
}

// Port returns the number of the entry's port with that name; a missing
// name is an error at expansion time.
func (d commandData) Port(name string) (int, error) {
	p, ok := d.ports[name]
	if !ok {
		return 0, fmt.Errorf("no port named %q", name)
	}
	return p, nil
}

// workloadFromEntry checks an entry and expands its command.
func workloadFromEntry(e model.Workload, binDir string) (Workload, error) {
	w := Workload{
		Name:           e.Name,
		Namespace:      e.Namespace,
		ServiceAccount: e.ServiceAccount,
		Address:        e.Address,
		Ports:          make(map[string]int, len(e.Ports)),
	}
	if w.Namespace == "" {
		w.Namespace = "default"
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	where := "WorkloadEntry " + w.Namespace + "/" + w.Name
	if w.Name == "" {
		return Workload{}, errors.New("launch: WorkloadEntry without metadata.name")
	}
	addr, err := netip.ParseAddr(w.Address)
	if err != nil {
		return Workload{}, fmt.Errorf("launch: %s: spec.address: %w", where, err)
	}
	if !addr.IsLoopback() {
		return Workload{}, fmt.Errorf("launch: %s: spec.address %s is not a loopback address (local mode runs everything on this machine)", where, addr)
	}
	for _, p := range e.Ports {
		w.Ports[p.Name] = int(p.Port)
	}
	if v := strings.TrimSpace(e.Annotations[mesh.AnnotationLocalSidecarArgs]); v != "" {
		if w.SidecarArgs, err = splitCommand(v); err != nil {
			return Workload{}, fmt.Errorf("launch: %s: annotation %s: %w", where, mesh.AnnotationLocalSidecarArgs, err)
		}
	}
	cmdline, ok := e.Annotations[mesh.AnnotationLocalCommand]
	if !ok || strings.TrimSpace(cmdline) == "" {
		return w, nil
	}
	tmpl, err := template.New(where).Option("missingkey=error").Parse(cmdline)
	if err != nil {
		return Workload{}, fmt.Errorf("launch: %s: annotation %s: %w", where, mesh.AnnotationLocalCommand, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, commandData{
		Name: w.Name, Namespace: w.Namespace, ServiceAccount: w.ServiceAccount,
		Address: w.Address, ProxyURL: w.ProxyURL(), BinDir: binDir, ports: w.Ports,
	}); err != nil {
		return Workload{}, fmt.Errorf("launch: %s: annotation %s: %w", where, mesh.AnnotationLocalCommand, err)
	}
	w.Command, err = splitCommand(buf.String())
	if err != nil {
		return Workload{}, fmt.Errorf("launch: %s: annotation %s: %w", where, mesh.AnnotationLocalCommand, err)
	}
	return w, nil
}

// splitCommand splits a command line on white space; single or double
// quotes group words (no escapes, no expansion).
func splitCommand(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		quote rune
		inArg bool
	)
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}
