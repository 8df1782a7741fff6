package kube

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/model"
)

func ptr[T any](v T) *T { return &v }

func meshPod(name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": "pay"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "pay",
			InitContainers:     []corev1.Container{{Name: mesh.ContainerSidecar, Image: "x"}},
			Containers:         []corev1.Container{{Name: "app", Image: "x", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
		Status: corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning},
	}
}

func slice(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "pay-abc", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "pay"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(corev1.ProtocolTCP)}},
		Endpoints:   eps,
	}
}

func ep(pod, ip string, ready, serving, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: pod},
		Zone:       ptr("z1"),
	}
}

func TestSourcePushesStateAndSkipsNoops(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "pay", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.0.0.9",
			Selector:  map[string]string{"app": "pay"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	ext := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "example.com",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(443), Protocol: corev1.ProtocolTCP}},
		},
	}
	bare := &corev1.Service{ // no ports: a DNS alias only, reaches nothing
		ObjectMeta: metav1.ObjectMeta{Name: "alias", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "alias.example.com"},
	}
	plain := meshPod("plain", "10.1.0.9")
	plain.Spec.InitContainers = nil
	client := fake.NewClientset(svc, ext, bare, meshPod("pay-1", "10.1.0.1"), meshPod("pay-2", "10.1.0.2"), plain,
		slice(ep("pay-1", "10.1.0.1", true, true, false), ep("pay-2", "10.1.0.2", false, true, true), ep("plain", "10.1.0.9", false, false, false)))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pushes := make(chan model.State, 16)
	src := New(client, nil, WithResync(50*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(st model.State) { pushes <- st }) }()

	var st model.State
	select {
	case st = <-pushes:
	case <-ctx.Done():
		t.Fatal("no first push")
	}
	got, ok := st.Service("shop", "pay")
	if !ok {
		t.Fatalf("no Service shop/pay in %+v", st.Services)
	}
	if _, ok := st.Service("shop", "ext"); ok {
		t.Error("ExternalName Service among the mesh Services")
	}
	wantExt := []model.ExternalService{{
		Name: "ext", Namespace: "shop", Hosts: []string{"example.com"}, ExternalName: "example.com", Resolution: "DNS",
		Ports: []model.ExternalPort{{Number: 443, Name: "https", Protocol: "TLS"}},
		Allow: []model.EgressRule{{Namespaces: []string{"shop"}}},
	}}
	if diff := cmp.Diff(wantExt, st.Egress); diff != "" {
		t.Errorf("external destinations (-want +got):\n%s", diff)
	}
	if len(st.Workloads) != 2 {
		t.Errorf("workloads = %d, want 2 (pods with the sidecar only)", len(st.Workloads))
	}
	w, ok := st.Workload(mesh.NodeID("pay-1", "shop"))
	if !ok || w.ServiceAccount != "pay" || w.Address != "10.1.0.1" || len(w.InboundPorts) != 1 || w.InboundPorts[0] != 8080 {
		t.Errorf("workload pay-1 = %+v, %v", w, ok)
	}
	eps := got.Ports[0].Endpoints
	want := []struct {
		addr     string
		health   model.Health
		workload string
	}{{"10.1.0.1", model.Healthy, "pay-1"}, {"10.1.0.2", model.Draining, "pay-2"}, {"10.1.0.9", model.Unhealthy, ""}}
	if len(eps) != len(want) {
		t.Fatalf("endpoints = %+v", eps)
	}
	for i, w := range want {
		t.Run(w.addr, func(t *testing.T) {
			e := eps[i]
			if e.Address != w.addr || e.Health() != w.health || e.Workload != w.workload || e.Port != 8080 || e.Locality.Zone != "z1" {
				t.Errorf("endpoint = %+v, want %+v", e, w)
			}
		})
	}

	// Resyncs (every 50 ms) change nothing: no push.
	select {
	case st := <-pushes:
		t.Fatalf("push without a change: %+v", st.Services)
	case <-time.After(300 * time.Millisecond):
	}

	// A real change pushes.
	pod3 := meshPod("pay-3", "10.1.0.3")
	if _, err := client.CoreV1().Pods("shop").Create(ctx, pod3, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-pushes:
		if _, ok := st.Workload(mesh.NodeID("pay-3", "shop")); !ok {
			t.Errorf("pay-3 not in the pushed state")
		}
	case <-ctx.Done():
		t.Fatal("no push after a new pod")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
