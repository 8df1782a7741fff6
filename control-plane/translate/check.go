package translate

import (
	"errors"
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Check verifies that a set of resources is what a sidecar accepts: every
// resource passes ValidateAll, names are unique per type, every listener's
// RDS name is a RouteConfiguration, every route (in RDS or inline) points to
// a cluster, every EDS cluster has a ClusterLoadAssignment and every
// assignment belongs to an EDS cluster. It is the sidecar's own check run
// before the push.
func Check(r *Resources) error {
	return check(r, func(m validatable) error { return m.ValidateAll() }, decodeHCM)
}

// decodeHCM decodes and validates an HttpConnectionManager typed config.
func decodeHCM(a *anypb.Any) (*hcm.HttpConnectionManager, error) {
	m := &hcm.HttpConnectionManager{}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, err
	}
	if err := m.ValidateAll(); err != nil {
		return nil, err
	}
	return m, nil
}

// validatable is a resource or typed config with generated validation.
type validatable interface {
	proto.Message
	ValidateAll() error
}

// check is Check with validate running ValidateAll and hcmOf decoding and
// validating an HttpConnectionManager (Index runs both once per shared
// object).
func check(r *Resources, validate func(validatable) error, hcmOf func(*anypb.Any) (*hcm.HttpConnectionManager, error)) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{errInconsistent}, args...)...))
	}
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		if err := validateRoute(rc, validate); err != nil {
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
		if err := validate(c); err != nil {
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
		if err := validate(cla); err != nil {
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
		if err := validate(l); err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", l.GetName(), err))
		}
		if listeners[l.GetName()] {
			bad("listener %q is defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs((*hcm.HttpConnectionManager)(nil)) {
					continue
				}
				m, err := hcmOf(f.GetTypedConfig())
				if err != nil {
					errs = append(errs, fmt.Errorf("listener %q: filter %q: %w", l.GetName(), f.GetName(), err))
					continue
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

// validateRoute validates a RouteConfiguration; one that sets nothing but
// its name and virtual hosts (what Build makes) is validated virtual host
// by virtual host, so that shared ones are validated once.
func validateRoute(rc *route.RouteConfiguration, validate func(validatable) error) error {
	simple := true
	rc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		simple = fd.Name() == "name" || fd.Name() == "virtual_hosts"
		return simple
	})
	if !simple {
		return validate(rc)
	}
	if err := (&route.RouteConfiguration{Name: rc.GetName()}).ValidateAll(); err != nil {
		return err
	}
	for _, vh := range rc.GetVirtualHosts() {
		if err := validate(vh); err != nil {
			return fmt.Errorf("invalid RouteConfiguration.VirtualHosts: %w", err)
		}
	}
	return nil
}
