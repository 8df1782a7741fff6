package dnsproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
)

// DefaultResolvConf is where the upstream resolvers are read from.
const DefaultResolvConf = "/etc/resolv.conf"

// ParseResolvConf returns the nameserver lines of a resolv.conf as
// host:53 addresses, in order. Zone-scoped IPv6 addresses keep their zone.
func ParseResolvConf(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("dnsproxy: resolv.conf: nameserver %q: %w", f[1], err)
		}
		out = append(out, net.JoinHostPort(a.String(), "53"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dnsproxy: resolv.conf: %w", err)
	}
	return out, nil
}

// ReadResolvConf reads path (DefaultResolvConf when empty).
func ReadResolvConf(path string) ([]string, error) {
	if path == "" {
		path = DefaultResolvConf
	}
	f, err := os.Open(path) //nolint:gosec // G304: an operator-chosen config file.
	if err != nil {
		return nil, fmt.Errorf("dnsproxy: %w", err)
	}
	defer func() { _ = f.Close() }()
	return ParseResolvConf(f)
}
