package router

import (
	"log/slog"
	"strings"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/sidecar/filter/budget"
	"github.com/weftmesh/weft/sidecar/filter/metrics"
	"github.com/weftmesh/weft/sidecar/filter/outlier"
	"github.com/weftmesh/weft/sidecar/lb"
	"github.com/weftmesh/weft/sidecar/xdsclient"
)

// Cluster is a compiled cluster: its picker and its resilience state.
type Cluster struct {
	Name   string
	Picker lb.Picker
	// LB is how the picker was built.
	LB lb.Config
	// Limits are the circuit-breaker thresholds and retry budget.
	Limits *budget.Limits
	// Outlier is the cluster's outlier detection.
	Outlier *outlier.Detector
	// Stats are the cluster's counters.
	Stats *metrics.Stats
	// Services are the FQDNs an inbound cluster serves
	// (filter_metadata["weft"]["services"], sorted); nil otherwise.
	Services []string
	// hosts and states by endpoint address: carried to the next table so
	// breakers, in-flight counts and latency survive EDS updates.
	hosts  map[string]*outlier.Host
	states map[string]*lb.State
	// from, for reuse across tables.
	cluster    *xdsclient.Cluster
	assignment *xdsclient.Assignment
}

// Host returns the outlier breaker of ep (nil for an endpoint the cluster
// does not know, which Allow treats as always allowed).
func (c *Cluster) Host(ep *lb.Endpoint) *outlier.Host { return c.hosts[ep.Addr] }

// with returns a copy of c that points at the resources of the new
// snapshot (they are equal to the old ones).
func (c *Cluster) with(xc *xdsclient.Cluster, as *xdsclient.Assignment) *Cluster {
	n := *c
	n.cluster, n.assignment = xc, as
	return &n
}

// lbConfig reads the picker configuration of a cluster.
func lbConfig(c *cluster.Cluster) lb.Config {
	var cfg lb.Config
	switch c.GetLbPolicy() {
	case cluster.Cluster_LEAST_REQUEST:
		cfg.Policy = lb.PolicyLeastRequest
		weft := c.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()
		if weft[mesh.MetadataLB].GetStringValue() == mesh.MetadataLBLeastLatency {
			cfg.Policy = lb.PolicyLeastLatency
		}
	case cluster.Cluster_RANDOM:
		cfg.Policy = lb.PolicyRandom
	case cluster.Cluster_RING_HASH:
		cfg.Policy = lb.PolicyRingHash
		cfg.MinRingSize = mesh.DefaultRingHashMinRingSize
		if v := c.GetRingHashLbConfig().GetMinimumRingSize(); v != nil {
			cfg.MinRingSize = int(min(v.GetValue(), 1<<23)) //nolint:gosec // G115: capped.
		}
	}
	if c.GetCommonLbConfig().GetZoneAwareLbConfig() != nil {
		loc := c.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataLocality].GetStringValue()
		parts := strings.SplitN(loc, "/", 3)
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		cfg.Local = &lb.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
	}
	return cfg
}

// services reads the inbound cluster's service FQDNs.
func services(c *cluster.Cluster) []string {
	vs := c.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataServices].GetListValue().GetValues()
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if s := v.GetStringValue(); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Service returns the service an inbound request for host (the Host or
// CONNECT authority the caller used, port optional) is for: the only
// service of the cluster, else the one whose FQDN host names (name,
// name.namespace, name.namespace.svc, or the FQDN itself), else "".
// It does not allocate.
func (c *Cluster) Service(host string) string {
	switch len(c.Services) {
	case 0:
		return ""
	case 1:
		return c.Services[0]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return ""
	}
	for _, s := range c.Services {
		if len(s) >= len(host) && strings.EqualFold(s[:len(host)], host) && (len(s) == len(host) || s[len(host)] == '.') {
			return s
		}
	}
	return ""
}

// compileCluster builds a cluster, carrying the endpoint state, breakers
// and counters of old (the same cluster in the previous table, or nil);
// sameRes says old's cluster resource is c's, so only the assignment
// changed.
func compileCluster(c *xdsclient.Cluster, as *xdsclient.Assignment, old *Cluster, sameRes bool, reg *metrics.Registry, log *slog.Logger) (*Cluster, error) {
	stats := reg.For(c.Name)
	out := &Cluster{
		Name:       c.Name,
		Stats:      stats,
		hosts:      map[string]*outlier.Host{},
		states:     map[string]*lb.State{},
		cluster:    c,
		assignment: as,
	}
	var odCfg outlier.Config
	var thresholds budget.Thresholds
	if sameRes {
		// Only the assignment changed: what the cluster resource says
		// is old's.
		odCfg, thresholds = old.Outlier.Config(), old.Limits.Thresholds()
		out.LB, out.Services = old.LB, old.Services
	} else {
		// The snapshot keeps the cluster encoded: decoded here for this
		// compilation only.
		res, err := c.Resource()
		if err != nil {
			return nil, err
		}
		odCfg, thresholds = outlier.FromCluster(res.GetOutlierDetection()), budget.FromCluster(res.GetCircuitBreakers())
		out.LB, out.Services = lbConfig(res), services(res)
	}
	var counters *budget.Counters
	keep := false
	if old != nil {
		counters = old.Limits.Counters()
		keep = old.Outlier.Config() == odCfg
	}
	out.Limits = budget.New(thresholds, counters)
	if keep {
		out.Outlier = old.Outlier
	} else {
		out.Outlier = outlier.New(c.Name, odCfg, stats, log)
	}
	eps := endpoints(c, as)
	for _, ep := range eps {
		if _, dup := out.states[ep.Addr]; dup {
			ep.State = out.states[ep.Addr]
			continue
		}
		if keep && old.states[ep.Addr] != nil {
			ep.State = old.states[ep.Addr]
			out.hosts[ep.Addr] = old.hosts[ep.Addr]
		} else {
			ep.State = new(lb.State)
			out.hosts[ep.Addr] = out.Outlier.Host(ep.Addr, ep.State)
		}
		out.states[ep.Addr] = ep.State
	}
	if old != nil {
		for addr, h := range old.hosts {
			if !keep || out.hosts[addr] == nil {
				h.Forget()
			}
		}
	}
	out.Picker = lb.New(out.LB, eps)
	out.Outlier.SetSize(len(out.Picker.Endpoints()))
	return out, nil
}
