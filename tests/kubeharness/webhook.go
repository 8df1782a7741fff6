package kubeharness

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/api/mesh"
)

// RegisterInjector creates the MutatingWebhookConfiguration config whose
// one webhook (name) calls url for every pod CREATE in a namespace labelled
// mesh.LabelInject=enabled, except pods labelled mesh.LabelInject=disabled,
// with failurePolicy Fail; the serving certificate must come from c.CA.
// The same selectors as the Helm chart's.
func (c *Cluster) RegisterInjector(ctx context.Context, config, name, url string) error {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	never := admissionregistrationv1.NeverReinvocationPolicy
	equivalent := admissionregistrationv1.Equivalent
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: config},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    name,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: c.CA.CertPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{mesh.LabelInject: mesh.InjectEnabled}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: mesh.LabelInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{mesh.InjectDisabled},
			}}},
			FailurePolicy:      &fail,
			SideEffects:        &none,
			TimeoutSeconds:     &timeout,
			ReinvocationPolicy: &never,
			MatchPolicy:        &equivalent,
		}},
	}
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubeharness: webhook configuration %s: %w", config, err)
	}
	return nil
}
