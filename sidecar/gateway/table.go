package gateway

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/api/egress"
	"github.com/weftmesh/weft/api/mesh"

	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// compiled is the egress index of one snapshot.
type compiled struct {
	snap  *xdsclient.Snapshot
	ix    *egress.Index
	roots map[string]*x509.CertPool // by destination name, for originateTLS
	// pols are the HTTP destinations' resilience policies; res binds them
	// to their lasting state (Handler.index).
	pols map[*egress.Destination]*policy
	res  map[*egress.Destination]*resilience
	err  error
}

// errNoTable: the snapshot has no gateway chain with an egress table.
var errNoTable = errors.New("no egress table on the inbound filter chain for the gateway port")

// Validate checks the egress table of a snapshot (the xDS validator in
// gateway mode): a snapshot without one is fine (not configured yet), one
// that does not decode or compile is refused.
func Validate(s *xdsclient.Snapshot) error {
	c := compile(s)
	if c.err != nil && !errors.Is(c.err, errNoTable) {
		return c.err
	}
	return nil
}

func compile(s *xdsclient.Snapshot) *compiled {
	c := &compiled{snap: s}
	c.ix, c.roots, c.err = build(s)
	if c.err == nil {
		c.pols = map[*egress.Destination]*policy{}
		dests := c.ix.Destinations()
		for i := range dests {
			d := &dests[i]
			if d.Protocol != egress.ProtocolHTTP {
				continue
			}
			p, err := compilePolicy(d)
			if err != nil {
				c.ix, c.err = nil, fmt.Errorf("gateway: destination %s port %d: %w", d.Name, d.Port, err)
				return c
			}
			c.pols[d] = p
		}
	}
	return c
}

func build(s *xdsclient.Snapshot) (*egress.Index, map[string]*x509.CertPool, error) {
	if s == nil {
		return nil, nil, errNoTable
	}
	l := s.Listeners[mesh.ListenerInbound]
	if l == nil || l.Resource == nil {
		return nil, nil, errNoTable
	}
	for _, fc := range l.Resource.GetFilterChains() {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != mesh.PortEgressGateway {
			continue
		}
		v, ok := fc.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataEgress]
		if !ok {
			continue
		}
		data, err := protojson.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway: egress table: %w", err)
		}
		var t egress.Table
		if err := json.Unmarshal(data, &t); err != nil {
			return nil, nil, fmt.Errorf("gateway: egress table: %w", err)
		}
		ix, err := egress.Compile(t)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway: %w", err)
		}
		roots := map[string]*x509.CertPool{}
		for _, d := range ix.Destinations() {
			if d.CACertificates == "" {
				continue
			}
			p := x509.NewCertPool()
			if !p.AppendCertsFromPEM([]byte(d.CACertificates)) {
				return nil, nil, fmt.Errorf("gateway: destination %s: caCertificates: no PEM certificate", d.Name)
			}
			roots[d.Name] = p
		}
		return ix, roots, nil
	}
	return nil, nil, errNoTable
}
