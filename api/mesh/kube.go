package mesh

// Kubernetes mode of the control plane (--registry=kube): the objects it
// owns in ControlPlaneNamespace.
const (
	// CASecretName is the Secret (in ControlPlaneNamespace) that holds the
	// mesh CA's material: keys CASecretCertChainKey, CASecretKeyKey and
	// CASecretBundleKey (PEM). Only the leader creates or updates it.
	CASecretName         = "weft-ca"
	CASecretCertChainKey = "ca-cert.pem"
	CASecretKeyKey       = "ca-key.pem"
	CASecretBundleKey    = "root-certs.pem"
	// LeaderLeaseName is the coordination.k8s.io Lease the control-plane
	// replicas elect their leader with (in ControlPlaneNamespace).
	LeaderLeaseName = "weft-control-plane"
	// TokenReviewPodNameExtra and TokenReviewPodUIDExtra are the TokenReview
	// status.user.extra keys that name the pod a bound token belongs to.
	TokenReviewPodNameExtra = "authentication.kubernetes.io/pod-name"
	TokenReviewPodUIDExtra  = "authentication.kubernetes.io/pod-uid"
)
