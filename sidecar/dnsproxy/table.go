package dnsproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
)

// Service is one mesh service the proxy answers for.
type Service struct {
	// Host is the FQDN, <svc>.<ns>.svc.<cluster domain>.
	Host string
	// Addresses are its virtual IPs.
	Addresses []netip.Addr
}

// Table maps query names (lower case, with the final dot) to addresses.
// It is immutable once built.
type Table struct {
	names map[string][]netip.Addr
}

// NewTable builds the table for a proxy in namespace: each service under
// its FQDN, <svc>.<ns>.svc, <svc>.<ns> and, in namespace, <svc>. A host
// that is not <svc>.<ns>.svc.<domain> is answered under its own name only.
// Services with no address are left out (forwarded).
func NewTable(namespace string, services []Service) *Table {
	t := &Table{names: map[string][]netip.Addr{}}
	ns := strings.ToLower(namespace)
	for _, s := range services {
		if len(s.Addresses) == 0 {
			continue
		}
		host := strings.TrimSuffix(strings.ToLower(s.Host), ".")
		if host == "" {
			continue
		}
		names := []string{host}
		if labels := strings.SplitN(host, ".", 4); len(labels) == 4 && labels[2] == "svc" {
			svc, sns := labels[0], labels[1]
			names = append(names, svc+"."+sns+".svc", svc+"."+sns)
			if sns == ns {
				names = append(names, svc)
			}
		}
		for _, n := range names {
			n += "."
			for _, a := range s.Addresses {
				if a = a.Unmap(); !slices.Contains(t.names[n], a) {
					t.names[n] = append(t.names[n], a)
				}
			}
		}
	}
	for _, as := range t.names {
		slices.SortFunc(as, netip.Addr.Compare)
	}
	return t
}

// Lookup returns the addresses of name (any case, with or without the
// final dot) and whether the table has it.
func (t *Table) Lookup(name string) ([]netip.Addr, bool) {
	if t == nil {
		return nil, false
	}
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	as, ok := t.names[name]
	return as, ok
}

// Len is the number of names in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// ServiceOf is the service an outbound cluster's Weft metadata names
// (mesh.MetadataServiceHost, mesh.MetadataServiceAddresses, as
// xdsclient.Cluster holds them): false when it names none (no host or no
// address list), an error when an address is not an IP. A service has one
// cluster per port, so services repeat; NewTable merges them.
func ServiceOf(cluster, host string, addresses []string) (Service, bool, error) {
	if host == "" || addresses == nil {
		return Service{}, false, nil
	}
	s := Service{Host: host}
	for _, v := range addresses {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return Service{}, false, fmt.Errorf("dnsproxy: cluster %s: %s: %w", cluster, mesh.MetadataServiceAddresses, err)
		}
		s.Addresses = append(s.Addresses, a)
	}
	return s, true, nil
}
