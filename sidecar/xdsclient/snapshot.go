package xdsclient

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/api/authz"
	"github.com/weftmesh/weft/api/xdsproto"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
	core "github.com/weftmesh/weft/api/xdsproto/envoy/config/core/v3"
	endpoint "github.com/weftmesh/weft/api/xdsproto/envoy/config/endpoint/v3"
	listener "github.com/weftmesh/weft/api/xdsproto/envoy/config/listener/v3"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"
	discovery "github.com/weftmesh/weft/api/xdsproto/envoy/service/discovery/v3"
)

// Snapshot is one accepted configuration: every resource in it passed
// validation and every reference that is checked on arrival resolved.
//
// A Snapshot is immutable. Its maps and the protos they hold are shared with
// later snapshots and must never be modified; a new update makes a new
// Snapshot with new maps for the types it changed.
type Snapshot struct {
	// Listeners (LDS) by name.
	Listeners map[string]*Listener
	// Routes (RDS) by name: the route configurations the listeners name.
	Routes map[string]*route.RouteConfiguration
	// Clusters (CDS) by name.
	Clusters map[string]*Cluster
	// Endpoints (EDS) by EDS service name: the assignments EDS clusters name.
	Endpoints map[string]*Assignment
	// Versions are the ACKed version of each type in this snapshot.
	Versions Versions
	// Complete is true once LDS and CDS were accepted and every route
	// configuration a listener names and every assignment an EDS cluster
	// names has arrived.
	Complete bool
}

// Versions holds one version per resource type ("" until accepted).
type Versions struct {
	Listeners, Routes, Clusters, Endpoints string
}

// Listener is a validated LDS resource.
type Listener struct {
	Name string
	// Address is host:port, the listener's socket address.
	Address string
	// Chains are the filter chains, each with one HTTP connection manager.
	Chains   []FilterChain
	Resource *listener.Listener
}

// FilterChain is one filter chain of a listener: a destination port match
// and the routes its HTTP connection manager uses.
type FilterChain struct {
	Name string
	// DestinationPort is filter_chain_match.destination_port; 0 matches
	// any port.
	DestinationPort uint32
	// RouteName is the RDS route configuration name, when the chain uses
	// RDS; empty when the route configuration is inline.
	RouteName string
	// Route is the inline route configuration, or nil with RDS.
	Route *route.RouteConfiguration
	// TLS is the DownstreamTlsContext of the port's TLS chain (nil: the
	// port has no TLS chain). Plaintext is true when the port also (or
	// only) has a plaintext chain: transport_protocol raw_buffer, or no
	// transport protocol and no transport socket. A STRICT port has TLS
	// only; a PERMISSIVE one both (the two chains are merged into one).
	TLS       *DownstreamTLS
	Plaintext bool
	// Authz is the compiled RBAC filters of the chain's HTTP connection
	// manager, in order (api/authz); never nil for a decoded chain (an
	// engine with no filter allows everything).
	Authz *authz.Engine
}

// Cluster is a validated CDS resource.
type Cluster struct {
	Name string
	// EDSName is the EDS service name of an EDS cluster (service_name, or
	// the cluster name when that is empty); empty for STATIC clusters.
	EDSName string
	// Static is the inline load_assignment of a STATIC cluster.
	Static *Assignment
	// ConnectTimeout is connect_timeout (zero when unset).
	ConnectTimeout time.Duration
	// TLS is the cluster's UpstreamTlsContext (nil: plaintext h2c tunnel).
	TLS *UpstreamTLS
	// Type is the cluster's discovery type: EDS, STATIC or ORIGINAL_DST.
	Type cluster.Cluster_DiscoveryType
	// ServiceHost and ServiceAddresses are the DNS proxy's names of the
	// cluster's service, read at every update: filter_metadata["weft"]
	// ["service_host"] ("" when unset) and ["service_addresses"] (nil when
	// unset, empty for an empty list; an entry that is not a string is
	// "", which dnsproxy.ServiceOf rejects).
	ServiceHost      string
	ServiceAddresses []string
	// raw is the resource's wire form. The decoded message is not kept:
	// ~3 KB of protos per mesh cluster (circuit breakers, outlier
	// detection, the TLS context and protocol options as Anys) against
	// ~0.4 KB encoded, and only a new or changed cluster's compilation and
	// the config dump read the rest. Resource decodes it again.
	raw []byte
}

// Resource decodes the cluster as received.
func (c *Cluster) Resource() (*cluster.Cluster, error) {
	m := &cluster.Cluster{}
	if err := proto.Unmarshal(c.raw, m); err != nil {
		return nil, fmt.Errorf("xdsclient: cluster %q: %w", c.Name, err)
	}
	return m, nil
}

// SameResource reports whether c and o were decoded from equal resources:
// the same bytes (a control plane sends an unchanged resource as it sent
// it before), else equal once decoded (map entries may be encoded in any
// order).
func (c *Cluster) SameResource(o *Cluster) bool {
	if bytes.Equal(c.raw, o.raw) {
		return true
	}
	a, err := c.Resource()
	if err != nil {
		return false
	}
	b, err := o.Resource()
	if err != nil {
		return false
	}
	return proto.Equal(a, b)
}

// Assignment is a validated ClusterLoadAssignment with its endpoints
// decoded.
//
// The decoded message is not kept: an assignment of one endpoint decodes
// into ~2 KB of protos, a fifth of the sidecar's heap at 10,000 Services,
// and nothing but the config dump reads it. Resource decodes it again from
// the wire form (a STATIC cluster's inline assignment is part of its
// cluster's Resource and is kept as it is).
type Assignment struct {
	Name      string
	Endpoints []Endpoint
	raw       []byte                          // EDS: the resource's wire form
	inline    *endpoint.ClusterLoadAssignment // STATIC: the cluster's load_assignment
}

// Resource returns the ClusterLoadAssignment as received.
func (a *Assignment) Resource() (*endpoint.ClusterLoadAssignment, error) {
	if a.inline != nil {
		return a.inline, nil
	}
	cla := &endpoint.ClusterLoadAssignment{}
	if err := proto.Unmarshal(a.raw, cla); err != nil {
		return nil, fmt.Errorf("xdsclient: assignment %q: %w", a.Name, err)
	}
	return cla, nil
}

// Equal reports whether a and b name the same endpoints, in the same
// order, with the same attributes: all the data path reads of an
// assignment.
func (a *Assignment) Equal(b *Assignment) bool {
	return a.Name == b.Name && slices.Equal(a.Endpoints, b.Endpoints)
}

// Endpoint is one LbEndpoint of an assignment.
type Endpoint struct {
	// IP and Port are the endpoint's socket address (an IP literal).
	IP   string
	Port uint32
	// TunnelPort is filter_metadata["weft"]["tunnel_port"], 0 when unset:
	// the endpoint runs a sidecar whose inbound listener is at IP:TunnelPort.
	TunnelPort uint32
	// Workload and Identity are filter_metadata["weft"]["workload"] and
	// ["identity"], empty when unset.
	Workload string
	Identity string
	// Weight is load_balancing_weight, 1 when unset.
	Weight uint32
	Health core.HealthStatus
	// Priority is the locality's priority (0 is the highest).
	Priority uint32
	// Region, Zone and SubZone are the locality's.
	Region, Zone, SubZone string
}

// RouteNames returns the sorted RDS names the listeners reference.
func (s *Snapshot) RouteNames() []string { return routeNames(s.Listeners) }

// EndpointNames returns the sorted EDS names the clusters reference.
func (s *Snapshot) EndpointNames() []string { return endpointNames(s.Clusters) }

func routeNames(ls map[string]*Listener) []string {
	set := map[string]bool{}
	for _, l := range ls {
		for _, fc := range l.Chains {
			if fc.RouteName != "" {
				set[fc.RouteName] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func endpointNames(cs map[string]*Cluster) []string {
	set := map[string]bool{}
	for _, c := range cs {
		if c.EDSName != "" {
			set[c.EDSName] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// complete computes Snapshot.Complete.
func (s *Snapshot) complete(haveLDS, haveCDS bool) bool {
	if !haveLDS || !haveCDS {
		return false
	}
	for _, n := range s.RouteNames() {
		if s.Routes[n] == nil {
			return false
		}
	}
	for _, n := range s.EndpointNames() {
		if s.Endpoints[n] == nil {
			return false
		}
	}
	// A cluster removal that overtook the route update that stops naming
	// it waits here instead of answering 503.
	for _, l := range s.Listeners {
		for _, fc := range l.Chains {
			rc := fc.Route
			if rc == nil {
				rc = s.Routes[fc.RouteName]
			}
			if checkRouteClusters(rc, s.Clusters) != nil {
				return false
			}
		}
	}
	return true
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		Listeners: map[string]*Listener{},
		Routes:    map[string]*route.RouteConfiguration{},
		Clusters:  map[string]*Cluster{},
		Endpoints: map[string]*Assignment{},
	}
}

// with returns a shallow copy of s (maps shared; replace the ones you change).
func (s *Snapshot) with() *Snapshot {
	c := *s
	return &c
}

// NewSnapshot validates resources exactly as the client validates responses
// (clusters, endpoints, listeners, routes in ADS order) and returns the
// snapshot they make, with empty versions. Endpoints and routes that no
// cluster or listener names are left out. It is for tests and tools. Each
// argument is nil or a slice of Envoy messages of that resource type, of
// any Go type of the message (go-control-plane's or the trimmed one of
// api/xdsproto): they are read from their wire form, as the client reads a
// response.
func NewSnapshot(listeners, routes, clusters, endpoints any) (*Snapshot, error) {
	var ms [4][]proto.Message
	for i, arg := range []any{listeners, routes, clusters, endpoints} {
		var err error
		if ms[i], err = protos(arg); err != nil {
			return nil, err
		}
	}
	ls, rs, cs, es := ms[0], ms[1], ms[2], ms[3]
	c := &Client{state: emptySnapshot(), types: newTypes(), log: slog.New(slog.DiscardHandler)}
	steps := []struct {
		url  string
		msgs []proto.Message
	}{
		{TypeCluster, cs},
		{TypeEndpoint, es},
		{TypeListener, ls},
		{TypeRoute, rs},
	}
	for _, st := range steps {
		ts := c.types[st.url]
		switch st.url {
		case TypeEndpoint:
			ts.names = c.state.EndpointNames()
		case TypeRoute:
			ts.names = c.state.RouteNames()
		}
		resp := &discovery.DiscoveryResponse{TypeUrl: st.url}
		for _, m := range st.msgs {
			a, err := xdsproto.NewAny(m)
			if err != nil {
				return nil, fmt.Errorf("xdsclient: %w", err)
			}
			resp.Resources = append(resp.Resources, a)
		}
		cand, _, err := c.candidate(ts, resp)
		if err != nil {
			return nil, err
		}
		c.state = cand
		c.haveLDS = c.haveLDS || st.url == TypeListener
		c.haveCDS = c.haveCDS || st.url == TypeCluster
	}
	return c.state, nil
}

// protos reads a slice of messages of any type (nil: none).
func protos(arg any) ([]proto.Message, error) {
	v := reflect.ValueOf(arg)
	if !v.IsValid() {
		return nil, nil
	}
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("xdsclient: NewSnapshot: %T is not a slice of messages", arg)
	}
	out := make([]proto.Message, v.Len())
	for i := range v.Len() {
		m, ok := v.Index(i).Interface().(proto.Message)
		if !ok {
			return nil, fmt.Errorf("xdsclient: NewSnapshot: %T is not a slice of messages", arg)
		}
		out[i] = m
	}
	return out, nil
}
