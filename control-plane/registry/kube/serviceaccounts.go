package kube

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/model"
	"github.com/weftmesh/weft/control-plane/registry/file"
)

// checkServiceAccounts reports the references to ServiceAccounts that do
// not exist, and leaves everything in the state: it changes no routing or
// authorization, it tells the operator what will break or never match.
//
//   - A mesh pod whose ServiceAccount is gone (deleted after the pod
//     started): the API server refuses its token at the next TokenReview,
//     so its sidecar cannot reconnect or renew its certificate, and it
//     drops out of the mesh when the certificate expires. It stays an
//     endpoint until then (removing it at once would turn a deleted
//     ServiceAccount into an immediate outage).
//   - An AuthorizationPolicy source or an ExternalService egress source
//     naming a ServiceAccount that does not exist: a typo there allows
//     nobody (ALLOW) or denies nobody (DENY) and nothing else says so. A
//     ServiceAccount created later clears the report.
//
// Only namespaces the cache holds any ServiceAccount for are checked for
// policy references (every namespace has "default" once the
// ServiceAccount controller ran), so a policy naming another cluster's or
// a not yet created namespace is not reported.
func checkServiceAccounts(sas []*corev1.ServiceAccount, pods []model.Workload, aps []*v1alpha1.AuthorizationPolicy, ess []*v1alpha1.ExternalService) file.Errors {
	exists := map[string]bool{}
	namespaces := map[string]bool{}
	for _, sa := range sas {
		exists[sa.Namespace+"/"+sa.Name] = true
		namespaces[sa.Namespace] = true
	}
	var errs file.Errors
	report := func(object, field, reason string) {
		errs = append(errs, &file.Error{File: source, Object: object, Field: field, Reason: reason})
	}
	for _, w := range pods {
		if !exists[w.Namespace+"/"+w.ServiceAccount] {
			report("Pod "+w.Namespace+"/"+w.Name, "spec.serviceAccountName",
				fmt.Sprintf("ServiceAccount %q does not exist: the sidecar's token no longer passes TokenReview (no reconnect, no certificate renewal)", w.ServiceAccount))
		}
	}
	missing := func(policyNS, ref string) (string, bool) {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			ns, name = policyNS, ref
		}
		key := ns + "/" + name
		return key, namespaces[ns] && !exists[key]
	}
	for _, ap := range aps {
		for i, r := range ap.Spec.Rules {
			for j, s := range r.From {
				for k, ref := range s.ServiceAccounts {
					if key, bad := missing(ap.Namespace, ref); bad {
						report("AuthorizationPolicy "+ap.Namespace+"/"+ap.Name, fmt.Sprintf("spec.rules[%d].from[%d].serviceAccounts[%d]", i, j, k),
							fmt.Sprintf("ServiceAccount %s does not exist: this source matches no one", key))
					}
				}
			}
		}
	}
	for _, es := range ess {
		for i, r := range es.Spec.Allow {
			for j, s := range r.From {
				for k, ref := range s.ServiceAccounts {
					if _, _, ok := strings.Cut(ref, "/"); !ok {
						continue // malformed: file.Build reports it
					}
					if key, bad := missing(es.Namespace, ref); bad {
						report("ExternalService "+es.Namespace+"/"+es.Name, fmt.Sprintf("spec.allow[%d].from[%d].serviceAccounts[%d]", i, j, k),
							fmt.Sprintf("ServiceAccount %s does not exist: this source matches no one", key))
					}
				}
			}
		}
	}
	slices.SortStableFunc(errs, func(a, b *file.Error) int { return strings.Compare(a.Object, b.Object) })
	return errs
}
