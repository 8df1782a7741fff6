package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/api/mesh"
	route "github.com/weftmesh/weft/api/xdsproto/envoy/config/route/v3"

	"github.com/weftmesh/weft/sidecar/filter/retry"
	"github.com/weftmesh/weft/sidecar/lb"
)

// Route is a compiled route.
type Route struct {
	// Name is the route's name ("default" for the catch-all).
	Name  string
	Match Match
	// ClusterName is the cluster the route sends to (the first of
	// Weighted for a split); Cluster is nil when the cluster is gone (a
	// route answers 503 until the control plane removes it).
	ClusterName string
	Cluster     *Cluster
	// Weighted is the split of weighted_clusters; nil for one cluster.
	Weighted    []WeightedCluster
	totalWeight uint64
	// Timeout is the whole-request deadline (0: none).
	Timeout time.Duration
	// Retry is the retry policy (never nil; NumRetries 0 when the route
	// has none).
	Retry *retry.Policy
	// BufferLimit is request_body_buffer_limit: bodies up to this size are
	// buffered so the request can be retried.
	BufferLimit int64
	// Hash is the hash_policy (ring hash keys), tried in order.
	Hash []HashPolicy
}

// WeightedCluster is one backend of a split.
type WeightedCluster struct {
	Name    string
	Weight  uint64
	Cluster *Cluster
	cum     uint64
}

// PickCluster returns the cluster of this request: the route's one
// cluster, or one of a split chosen with probability weight / total.
func (r *Route) PickCluster() (string, *Cluster) {
	if r.Weighted == nil {
		return r.ClusterName, r.Cluster
	}
	x := rand.Uint64N(r.totalWeight) //nolint:gosec // G404: traffic split, not security.
	for i := range r.Weighted {
		if x < r.Weighted[i].cum {
			return r.Weighted[i].Name, r.Weighted[i].Cluster
		}
	}
	last := &r.Weighted[len(r.Weighted)-1]
	return last.Name, last.Cluster
}

// HashKind says where a hash policy takes its key from.
type HashKind int

// Hash policy kinds.
const (
	HashHeader HashKind = iota
	HashCookie
	HashSourceIP
)

// HashPolicy is one compiled hash_policy entry.
type HashPolicy struct {
	Kind HashKind
	// Name is the header (canonical) or cookie name.
	Name     string
	Terminal bool
}

// HashKey returns the hash of r's key under the route's hash policies, and
// false when the route has none or r has no value for any.
func (r *Route) HashKey(req *http.Request) (uint64, bool) {
	var h uint64
	found := false
	for _, hp := range r.Hash {
		var v string
		switch hp.Kind {
		case HashHeader:
			v = req.Header.Get(hp.Name)
		case HashCookie:
			if c, err := req.Cookie(hp.Name); err == nil {
				v = c.Value
			}
		case HashSourceIP:
			if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
				v = host
			}
		}
		if v == "" {
			continue
		}
		k := lb.HashKey(v)
		if found {
			h = (h<<1 | h>>63) ^ k
		} else {
			h, found = k, true
		}
		if hp.Terminal {
			break
		}
	}
	return h, found
}

func compileRoute(r *route.Route, clusters map[string]*Cluster) (*Route, error) {
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, err
	}
	a := r.GetRoute()
	if a == nil {
		return nil, fmt.Errorf("action: only route is supported, got %T", r.GetAction())
	}
	out := &Route{Name: r.GetName(), Match: m, BufferLimit: int64(r.GetPerRequestBufferLimitBytes().GetValue())} //nolint:gosec // G115: a uint32 fits.
	if v := r.GetRequestBodyBufferLimit(); v != nil {
		out.BufferLimit = int64(min(v.GetValue(), 1<<40)) //nolint:gosec // G115: capped.
	}
	switch cs := a.GetClusterSpecifier().(type) {
	case *route.RouteAction_Cluster:
		out.ClusterName, out.Cluster = cs.Cluster, clusters[cs.Cluster]
	case *route.RouteAction_WeightedClusters:
		for _, wc := range cs.WeightedClusters.GetClusters() {
			if wc.GetClusterHeader() != "" {
				return nil, errors.New("route: weighted_clusters: cluster_header is not supported")
			}
			w := uint64(wc.GetWeight().GetValue())
			if w == 0 {
				continue
			}
			out.totalWeight += w
			out.Weighted = append(out.Weighted, WeightedCluster{Name: wc.GetName(), Weight: w, Cluster: clusters[wc.GetName()], cum: out.totalWeight})
		}
		if len(out.Weighted) == 0 {
			return nil, errors.New("route: weighted_clusters: no cluster has a weight")
		}
		if cs.WeightedClusters.GetHeaderName() != "" || cs.WeightedClusters.GetRandomValueSpecifier() != nil {
			return nil, errors.New("route: weighted_clusters: only clusters and weights are supported")
		}
		out.ClusterName, out.Cluster = out.Weighted[0].Name, out.Weighted[0].Cluster
	default:
		return nil, fmt.Errorf("route: only cluster and weighted_clusters are supported, got %T", a.GetClusterSpecifier())
	}
	switch {
	case a.GetPrefixRewrite() != "" || a.GetRegexRewrite() != nil || a.GetPathRewritePolicy() != nil:
		return nil, errors.New("route: path rewrites are not supported")
	case a.GetHostRewriteSpecifier() != nil:
		return nil, errors.New("route: host rewrites are not supported")
	case a.GetIdleTimeout() != nil || a.GetMaxStreamDuration() != nil:
		return nil, errors.New("route: idle_timeout and max_stream_duration are not supported")
	}
	out.Timeout = a.GetTimeout().AsDuration()
	nonIdem := r.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataRetryNonIdempotent].GetBoolValue()
	if out.Retry, err = retry.Compile(a.GetRetryPolicy(), nonIdem); err != nil {
		return nil, fmt.Errorf("route: retry_policy: %w", err)
	}
	for i, hp := range a.GetHashPolicy() {
		p := HashPolicy{Terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *route.RouteAction_HashPolicy_Header_:
			if s.Header.GetRegexRewrite() != nil {
				return nil, fmt.Errorf("route: hash_policy %d: header regex_rewrite is not supported", i)
			}
			p.Kind, p.Name = HashHeader, http.CanonicalHeaderKey(s.Header.GetHeaderName())
		case *route.RouteAction_HashPolicy_Cookie_:
			if s.Cookie.GetTtl() != nil {
				return nil, fmt.Errorf("route: hash_policy %d: cookie ttl is not supported (the sidecar never sets cookies)", i)
			}
			p.Kind, p.Name = HashCookie, s.Cookie.GetName()
		case *route.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.GetSourceIp() {
				return nil, fmt.Errorf("route: hash_policy %d: connection_properties without source_ip", i)
			}
			p.Kind = HashSourceIP
		default:
			return nil, fmt.Errorf("route: hash_policy %d: %T is not supported", i, s)
		}
		out.Hash = append(out.Hash, p)
	}
	return out, nil
}
