package kube

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// DefaultResync is the informers' resync period. A resync that changes
// nothing pushes nothing (the state's hash is compared).
const DefaultResync = 10 * time.Minute

// Resources read through the dynamic client.
var (
	GVRHTTPRoute           = schema.GroupVersionResource{Group: gwv1.GroupVersion.Group, Version: gwv1.GroupVersion.Version, Resource: "httproutes"}
	GVRWorkloadEntry       = v1alpha1.SchemeGroupVersion.WithResource("workloadentries")
	GVRTrafficPolicy       = v1alpha1.SchemeGroupVersion.WithResource("trafficpolicies")
	GVRAuthorizationPolicy = v1alpha1.SchemeGroupVersion.WithResource("authorizationpolicies")
	GVRExternalService     = v1alpha1.SchemeGroupVersion.WithResource("externalservices")
)

// Source is a registry.Source that follows a Kubernetes cluster.
type Source struct {
	client  kubernetes.Interface
	dyn     dynamic.Interface
	resync  time.Duration
	log     *slog.Logger
	onError func(error)
}

var _ registry.Source = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// WithResync sets the informers' resync period (DefaultResync).
func WithResync(d time.Duration) Option { return func(s *Source) { s.resync = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithErrorHandler is called with the problems of each build (objects left
// out), once per distinct set.
func WithErrorHandler(f func(error)) Option { return func(s *Source) { s.onError = f } }

// New returns a Source reading through client (typed kinds) and dyn (CRDs
// and Gateway API; nil skips them).
func New(client kubernetes.Interface, dyn dynamic.Interface, opts ...Option) *Source {
	s := &Source{client: client, dyn: dyn, resync: DefaultResync, log: slog.New(slog.DiscardHandler), onError: func(error) {}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// listers are the caches Run builds a state from.
type listers struct {
	services, slices, pods, namespaces, netpols, configMaps, serviceAccounts cache.GenericLister
	dynamic                                                                  map[schema.GroupVersionResource]cache.GenericLister
}

// Run starts the informers, waits for their caches, then pushes a state
// after every change that yields a new one. It returns nil when ctx ends.
func (s *Source) Run(ctx context.Context, push func(model.State)) error {
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(metav1.Object)
			n, ok2 := newObj.(metav1.Object)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return // a resync: nothing changed
			}
			notify()
		},
		DeleteFunc: func(any) { notify() },
	}

	factory := informers.NewSharedInformerFactory(s.client, s.resync)
	cmFactory := informers.NewSharedInformerFactoryWithOptions(s.client, s.resync,
		informers.WithNamespace(mesh.ControlPlaneNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", mesh.MeshConfigMapName).String()
		}))
	var ls listers
	add := func(gi informers.GenericInformer, err error) (cache.GenericLister, error) {
		if err != nil {
			return nil, err
		}
		if _, err := gi.Informer().AddEventHandler(handler); err != nil {
			return nil, err
		}
		return gi.Lister(), nil
	}
	var errs []error
	for _, x := range []struct {
		f   informers.SharedInformerFactory
		gvr schema.GroupVersionResource
		out *cache.GenericLister
	}{
		{factory, corev1.SchemeGroupVersion.WithResource("services"), &ls.services},
		{factory, schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, &ls.slices},
		{factory, corev1.SchemeGroupVersion.WithResource("pods"), &ls.pods},
		{factory, corev1.SchemeGroupVersion.WithResource("namespaces"), &ls.namespaces},
		{factory, corev1.SchemeGroupVersion.WithResource("serviceaccounts"), &ls.serviceAccounts},
		{factory, schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, &ls.netpols},
		{cmFactory, corev1.SchemeGroupVersion.WithResource("configmaps"), &ls.configMaps},
	} {
		l, err := add(x.f.ForResource(x.gvr))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", x.gvr.Resource, err))
		}
		*x.out = l
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registry/kube: informers: %w", err)
	}

	ls.dynamic = map[schema.GroupVersionResource]cache.GenericLister{}
	var dynFactory dynamicinformer.DynamicSharedInformerFactory
	if s.dyn != nil {
		dynFactory = dynamicinformer.NewDynamicSharedInformerFactory(s.dyn, s.resync)
		for _, gvr := range []schema.GroupVersionResource{GVRHTTPRoute, GVRWorkloadEntry, GVRTrafficPolicy, GVRAuthorizationPolicy, GVRExternalService} {
			if !s.served(gvr) {
				s.log.Info("registry/kube: resource not served, skipped", "resource", gvr.String())
				continue
			}
			l, err := add(dynFactory.ForResource(gvr), nil)
			if err != nil {
				return fmt.Errorf("registry/kube: informer %s: %w", gvr, err)
			}
			ls.dynamic[gvr] = l
		}
	}

	factory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer cmFactory.Shutdown()
	if dynFactory != nil {
		dynFactory.Start(ctx.Done())
		defer dynFactory.Shutdown()
	}
	start := time.Now()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return s.syncFailed(ctx, typ.String())
		}
	}
	for typ, ok := range cmFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return s.syncFailed(ctx, typ.String())
		}
	}
	if dynFactory != nil {
		for gvr, ok := range dynFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return s.syncFailed(ctx, gvr.String())
			}
		}
	}
	s.log.Info("registry/kube: caches synced", "took", time.Since(start).Round(time.Millisecond))

	var lastHash [32]byte
	lastErrs := ""
	first := true
	notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		st, problems := buildState(ls)
		if msg := problemsString(problems); msg != lastErrs {
			lastErrs = msg
			if len(problems) > 0 {
				s.log.Warn("registry/kube: objects left out or references that do not resolve", "errors", msg)
				s.onError(problems)
			}
		}
		h, err := hashState(st)
		if err == nil && !first && h == lastHash {
			continue
		}
		first = false
		lastHash = h
		push(st)
	}
}

func (s *Source) syncFailed(ctx context.Context, what string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("registry/kube: cache of %s did not sync", what)
}

// served reports whether the API server serves gvr (its CRD is installed).
func (s *Source) served(gvr schema.GroupVersionResource) bool {
	list, err := s.client.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true
		}
	}
	return false
}

func problemsString(errs file.Errors) string {
	if len(errs) == 0 {
		return ""
	}
	return errs.Error()
}

func hashState(st model.State) ([32]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return [32]byte{}, fmt.Errorf("registry/kube: hash state: %w", err)
	}
	return sha256.Sum256(b), nil
}

// buildState lists every cache and assembles the state (see file.Build).
func buildState(ls listers) (model.State, file.Errors) {
	var objs file.Objects
	objs.Services = listTyped[*corev1.Service](ls.services, nil) // ExternalName ones become external destinations in Build
	objs.EndpointSlices = listTyped[*discoveryv1.EndpointSlice](ls.slices, nil)
	objs.Namespaces = listTyped[*corev1.Namespace](ls.namespaces, nil)
	objs.NetworkPolicies = listTyped[*networkingv1.NetworkPolicy](ls.netpols, nil)
	objs.ConfigMaps = listTyped[*corev1.ConfigMap](ls.configMaps, nil)
	for _, pod := range listTyped[*corev1.Pod](ls.pods, nil) {
		if w, ok := workloadOfPod(pod); ok {
			objs.Pods = append(objs.Pods, w)
		}
	}
	objs.HTTPRoutes = listDynamic[gwv1.HTTPRoute](ls.dynamic[GVRHTTPRoute])
	objs.WorkloadEntries = listDynamic[v1alpha1.WorkloadEntry](ls.dynamic[GVRWorkloadEntry])
	objs.TrafficPolicies = listDynamic[v1alpha1.TrafficPolicy](ls.dynamic[GVRTrafficPolicy])
	objs.AuthorizationPolicies = listDynamic[v1alpha1.AuthorizationPolicy](ls.dynamic[GVRAuthorizationPolicy])
	objs.ExternalServices = listDynamic[v1alpha1.ExternalService](ls.dynamic[GVRExternalService])
	sas := listTyped[*corev1.ServiceAccount](ls.serviceAccounts, nil)
	// Checked before Build, which may default or consume the objects.
	saErrs := checkServiceAccounts(sas, objs.Pods, objs.AuthorizationPolicies, objs.ExternalServices)
	st, errs := file.Build(source, objs)
	return st, append(errs, saErrs...)
}

// source names the registry in reports.
const source = "kubernetes"

// deepCopier is a typed API object of the informer caches.
type deepCopier[T any] interface {
	runtime.Object
	metav1.Object
	DeepCopy() T
}

// listTyped lists a typed cache, keeps what keep accepts (nil: all), and
// returns deep copies (Build may default fields) in namespace/name order so
// that equal caches give equal states.
func listTyped[T deepCopier[T]](l cache.GenericLister, keep func(T) bool) []T {
	if l == nil {
		return nil
	}
	items, err := l.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		obj, ok := it.(T)
		if !ok || (keep != nil && !keep(obj)) {
			continue
		}
		out = append(out, obj.DeepCopy())
	}
	slices.SortFunc(out, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// listDynamic lists a dynamic cache and converts each object to its Go
// type; an object that does not convert is left out.
func listDynamic[T any, PT interface {
	*T
	metav1.Object
}](l cache.GenericLister) []PT {
	if l == nil {
		return nil
	}
	items, err := l.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]PT, 0, len(items))
	for _, it := range items {
		u, ok := it.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		obj := PT(new(T))
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), obj); err != nil {
			continue
		}
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b PT) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// workloadOfPod returns the mesh workload a pod is: one that runs the
// injected sidecar, has an IP, is not on the host network and has not
// finished.
func workloadOfPod(pod *corev1.Pod) (model.Workload, bool) {
	if pod.Status.PodIP == "" || pod.Spec.HostNetwork ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || !hasSidecar(pod) {
		return model.Workload{}, false
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	w := model.Workload{
		Name:           pod.Name,
		Namespace:      pod.Namespace,
		ServiceAccount: sa,
		Address:        pod.Status.PodIP,
		Labels:         pod.Labels,
		Annotations:    pod.Annotations,
		Weight:         1,
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == mesh.ContainerSidecar {
			continue
		}
		for _, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			w.Ports = append(w.Ports, model.WorkloadPort{Name: p.Name, Port: uint32(p.ContainerPort), Protocol: model.Protocol(proto)})
		}
	}
	return w, true
}

// hasSidecar reports whether the injector added the proxy to the pod (as a
// native sidecar init container or a regular container).
func hasSidecar(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == mesh.ContainerSidecar {
			return true
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == mesh.ContainerSidecar {
			return true
		}
	}
	return false
}
