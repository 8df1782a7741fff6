package ca

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/api/mesh"
)

// TokenReviewer is the Kubernetes Authenticator: the credential is a
// projected ServiceAccount token bound to a pod, with audience
// mesh.TokenAudience. It proves Identity{pod namespace, service account,
// pod name} when:
//
//   - the API server's TokenReview (with that audience) authenticates it as
//     system:serviceaccount:<ns>:<sa> and names the pod it is bound to
//     (status.user.extra authentication.kubernetes.io/pod-name and pod-uid:
//     a token not bound to a pod is refused);
//   - that pod still exists with that uid (a token of a deleted pod, or of
//     an earlier pod of the same name, is refused) and runs as that service
//     account.
//
// Every refusal wraps ErrUnauthenticated; an API server that cannot be
// reached is an error that does not.
type TokenReviewer struct {
	client   kubernetes.Interface
	audience string
}

var _ Authenticator = (*TokenReviewer)(nil)

// NewTokenReviewer returns an authenticator that reviews tokens for
// audience (mesh.TokenAudience when empty) through client.
func NewTokenReviewer(client kubernetes.Interface, audience string) *TokenReviewer {
	if audience == "" {
		audience = mesh.TokenAudience
	}
	return &TokenReviewer{client: client, audience: audience}
}

// Authenticate implements Authenticator.
func (r *TokenReviewer) Authenticate(ctx context.Context, credential string) (Identity, error) {
	if credential == "" {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: empty token", ErrUnauthenticated)
	}
	res, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: credential, Audiences: []string{r.audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w", err)
	}
	st := res.Status
	if !st.Authenticated {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: %s", ErrUnauthenticated, st.Error)
	}
	if !slices.Contains(st.Audiences, r.audience) {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: token is not for audience %q", ErrUnauthenticated, r.audience)
	}
	ns, sa, ok := parseServiceAccountUser(st.User.Username)
	if !ok {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: %q is not a service account", ErrUnauthenticated, st.User.Username)
	}
	podName, podUID := first(st.User.Extra[mesh.TokenReviewPodNameExtra]), first(st.User.Extra[mesh.TokenReviewPodUIDExtra])
	if podName == "" || podUID == "" {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: token of %s/%s is not bound to a pod", ErrUnauthenticated, ns, sa)
	}
	pod, err := r.client.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: pod %s/%s no longer exists", ErrUnauthenticated, ns, podName)
	case err != nil:
		return Identity{}, fmt.Errorf("ca: tokenreview: pod %s/%s: %w", ns, podName, err)
	case string(pod.UID) != podUID:
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: pod %s/%s was replaced (uid %s, token for %s)", ErrUnauthenticated, ns, podName, pod.UID, podUID)
	}
	podSA := pod.Spec.ServiceAccountName
	if podSA == "" {
		podSA = "default"
	}
	if podSA != sa {
		return Identity{}, fmt.Errorf("ca: tokenreview: %w: pod %s/%s runs as %q, token is for %q", ErrUnauthenticated, ns, podName, podSA, sa)
	}
	return Identity{Namespace: ns, ServiceAccount: sa, Workload: podName}, nil
}

func parseServiceAccountUser(user string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

func first(v authnv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
