package translate

import (
	"errors"
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Check verifies that a set of resources is what a sidecar accepts: every
// resource passes ValidateAll, names are unique per type, every listener's
// RDS name is a RouteConfiguration, every route (in RDS or inline) points to
// a cluster, every EDS cluster has a ClusterLoadAssignment and every
// assignment belongs to an EDS cluster. It is the sidecar's own check run
// before the push.
func Check(r *Resources) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{errInconsistent}, args...)...))
	}
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		if err := rc.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", rc.GetName(), err))
		}
		if routes[rc.GetName()] {
			bad("route %q is defined twice", rc.GetName())
		}
		routes[rc.GetName()] = true
	}
	clusters := map[string]bool{}
	eds := map[string]bool{}
	for _, c := range r.Clusters {
		if err := c.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", c.GetName(), err))
		}
		if clusters[c.GetName()] {
			bad("cluster %q is defined twice", c.GetName())
		}
		clusters[c.GetName()] = true
		if c.GetType() == cluster.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			eds[name] = true
		}
	}
	assigned := map[string]bool{}
	for _, cla := range r.Endpoints {
		if err := cla.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("endpoints %q: %w", cla.GetClusterName(), err))
		}
		if !eds[cla.GetClusterName()] {
			bad("endpoints %q belong to no EDS cluster", cla.GetClusterName())
		}
		assigned[cla.GetClusterName()] = true
	}
	for name := range eds {
		if !assigned[name] {
			bad("EDS cluster %q has no ClusterLoadAssignment", name)
		}
	}
	checkRoutes := func(where string, rc *route.RouteConfiguration) {
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				if c := rt.GetRoute().GetCluster(); c != "" && !clusters[c] {
					bad("%s: virtual host %q routes to unknown cluster %q", where, vh.GetName(), c)
				}
				for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
					if !clusters[wc.GetName()] {
						bad("%s: virtual host %q route %q splits to unknown cluster %q", where, vh.GetName(), rt.GetName(), wc.GetName())
					}
				}
				if a := rt.GetRoute(); a != nil && a.GetCluster() == "" && len(a.GetWeightedClusters().GetClusters()) == 0 {
					bad("%s: virtual host %q route %q has no cluster", where, vh.GetName(), rt.GetName())
				}
			}
		}
	}
	for _, rc := range r.Routes {
		checkRoutes(fmt.Sprintf("route %q", rc.GetName()), rc)
	}
	listeners := map[string]bool{}
	for _, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", l.GetName(), err))
		}
		if listeners[l.GetName()] {
			bad("listener %q is defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcm.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(m) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					errs = append(errs, fmt.Errorf("listener %q: filter %q: %w", l.GetName(), f.GetName(), err))
					continue
				}
				if err := m.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("listener %q: filter %q: %w", l.GetName(), f.GetName(), err))
				}
				if rds := m.GetRds(); rds != nil && !routes[rds.GetRouteConfigName()] {
					bad("listener %q: RDS route %q is not defined", l.GetName(), rds.GetRouteConfigName())
				}
				if rc := m.GetRouteConfig(); rc != nil {
					checkRoutes(fmt.Sprintf("listener %q: inline route %q", l.GetName(), rc.GetName()), rc)
				}
			}
		}
	}
	return errors.Join(errs...)
}
