package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
)

func sa(ns, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func TestCheckServiceAccounts(t *testing.T) {
	pod := model.Workload{Name: "pay-1", Namespace: "shop", ServiceAccount: "pay"}
	ap := func(refs ...string) *v1alpha1.AuthorizationPolicy {
		return &v1alpha1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "callers"},
			Spec:       v1alpha1.AuthorizationPolicySpec{Rules: []v1alpha1.AuthorizationRule{{From: []v1alpha1.Source{{ServiceAccounts: refs}}}}},
		}
	}
	es := func(refs ...string) *v1alpha1.ExternalService {
		return &v1alpha1.ExternalService{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"},
			Spec:       v1alpha1.ExternalServiceSpec{Allow: []v1alpha1.EgressRule{{From: []v1alpha1.EgressSource{{ServiceAccounts: refs}}}}},
		}
	}
	for _, tc := range []struct {
		name string
		sas  []*corev1.ServiceAccount
		pods []model.Workload
		aps  []*v1alpha1.AuthorizationPolicy
		ess  []*v1alpha1.ExternalService
		want []string // substrings, one per report, in order
	}{
		{
			name: "all exist", sas: []*corev1.ServiceAccount{sa("shop", "pay"), sa("shop", "order"), sa("web", "front")},
			pods: []model.Workload{pod}, aps: []*v1alpha1.AuthorizationPolicy{ap("order", "web/front")}, ess: []*v1alpha1.ExternalService{es("shop/order")},
		},
		{
			name: "pod's service account gone", sas: []*corev1.ServiceAccount{sa("shop", "default")}, pods: []model.Workload{pod},
			want: []string{`kubernetes: Pod shop/pay-1: spec.serviceAccountName: ServiceAccount "pay" does not exist`},
		},
		{
			name: "policy typo, short and qualified", sas: []*corev1.ServiceAccount{sa("shop", "order"), sa("web", "front")},
			aps:  []*v1alpha1.AuthorizationPolicy{ap("ordr", "web/frnt", "order")},
			want: []string{"AuthorizationPolicy shop/callers: spec.rules[0].from[0].serviceAccounts[0]: ServiceAccount shop/ordr does not exist", "serviceAccounts[1]: ServiceAccount web/frnt does not exist"},
		},
		{
			name: "namespace the cache knows nothing of is not judged", sas: []*corev1.ServiceAccount{sa("shop", "order")},
			aps: []*v1alpha1.AuthorizationPolicy{ap("elsewhere/x")}, ess: []*v1alpha1.ExternalService{es("elsewhere/y")},
		},
		{
			name: "egress source typo", sas: []*corev1.ServiceAccount{sa("shop", "order")}, ess: []*v1alpha1.ExternalService{es("shop/ordr", "malformed")},
			want: []string{"ExternalService shop/api: spec.allow[0].from[0].serviceAccounts[0]: ServiceAccount shop/ordr does not exist"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkServiceAccounts(tc.sas, tc.pods, tc.aps, tc.ess)
			if len(errs) != len(tc.want) {
				t.Fatalf("reports:\n%v\nwant %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("report %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

// The ServiceAccount informer: a missing account is reported, creating it
// clears the report, and neither pushes (the state did not change).
func TestSourceReportsMissingServiceAccount(t *testing.T) {
	client := fake.NewClientset(meshPod("pay-1", "10.1.0.1"))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pushes := make(chan model.State, 16)
	reports := make(chan error, 16)
	src := New(client, nil, WithErrorHandler(func(err error) { reports <- err }))
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(st model.State) { pushes <- st }) }()
	select {
	case <-pushes:
	case <-ctx.Done():
		t.Fatal("no first push")
	}
	select {
	case err := <-reports:
		if !strings.Contains(err.Error(), `Pod shop/pay-1: spec.serviceAccountName: ServiceAccount "pay" does not exist`) {
			t.Fatalf("report = %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no report of the missing ServiceAccount")
	}
	if _, err := client.CoreV1().ServiceAccounts("shop").Create(ctx, sa("shop", "pay"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod with another missing account: informers of different kinds
	// are not ordered, so wait for the report that names only pay-2's
	// account: then the ServiceAccount's event was handled and cleared
	// pay-1's report.
	pod2 := meshPod("pay-2", "10.1.0.2")
	pod2.Spec.ServiceAccountName = "other"
	if _, err := client.CoreV1().Pods("shop").Create(ctx, pod2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		var err error
		select {
		case err = <-reports:
		case <-ctx.Done():
			t.Fatal("no report naming only pay-2's missing account")
		}
		if msg := err.Error(); strings.Contains(msg, `"other"`) && !strings.Contains(msg, "pay-1") {
			break
		}
	}
	// One push for pay-2; the ServiceAccount changed nothing in the state.
	select {
	case st := <-pushes:
		if len(st.Workloads) != 2 {
			t.Fatalf("pushed %d workloads, want 2", len(st.Workloads))
		}
	case <-ctx.Done():
		t.Fatal("no push after a new pod")
	}
	select {
	case st := <-pushes:
		t.Fatalf("a second push (%d workloads): the ServiceAccount pushed", len(st.Workloads))
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
