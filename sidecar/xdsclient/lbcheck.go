package xdsclient

import (
	"errors"
	"fmt"

	"github.com/weftmesh/weft/api/mesh"
	cluster "github.com/weftmesh/weft/api/xdsproto/envoy/config/cluster/v3"
)

// checkLB accepts the load-balancing settings the sidecar implements
// (docs/architecture.md, Resilience contract): lb_policy ROUND_ROBIN,
// LEAST_REQUEST (choice_count 2), RANDOM or RING_HASH, Weft's least_latency
// metadata on LEAST_REQUEST, and zone_aware_lb_config. Anything else would
// be silently balanced differently than configured.
func checkLB(c *cluster.Cluster) error {
	switch c.GetLbPolicy() {
	case cluster.Cluster_ROUND_ROBIN, cluster.Cluster_RANDOM:
	case cluster.Cluster_LEAST_REQUEST:
		if n := c.GetLeastRequestLbConfig().GetChoiceCount(); n != nil && n.GetValue() != mesh.LeastRequestChoiceCount {
			return fmt.Errorf("least_request_lb_config.choice_count: %d is not supported (%d only)", n.GetValue(), mesh.LeastRequestChoiceCount)
		}
	case cluster.Cluster_RING_HASH:
		// The hash function is the sidecar's choice (the contract).
	default:
		return fmt.Errorf("lb_policy: %s is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH)", c.GetLbPolicy())
	}
	if lbv, ok := c.GetMetadata().GetFilterMetadata()[mesh.MetadataNamespace].GetFields()[mesh.MetadataLB]; ok {
		if lbv.GetStringValue() != mesh.MetadataLBLeastLatency {
			return fmt.Errorf("metadata %s.%s: %q is not supported (%q only)", mesh.MetadataNamespace, mesh.MetadataLB, lbv.GetStringValue(), mesh.MetadataLBLeastLatency)
		}
		if c.GetLbPolicy() != cluster.Cluster_LEAST_REQUEST {
			return fmt.Errorf("metadata %s.%s: %q needs lb_policy LEAST_REQUEST", mesh.MetadataNamespace, mesh.MetadataLB, mesh.MetadataLBLeastLatency)
		}
	}
	if cfg := c.GetCommonLbConfig(); cfg != nil {
		if cfg.GetLocalityWeightedLbConfig() != nil {
			return errors.New("common_lb_config.locality_weighted_lb_config: not supported")
		}
	}
	return nil
}
