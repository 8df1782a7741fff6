package ca

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/api/mesh"
)

// SecretStore keeps the CA's material in a Kubernetes Secret (type Opaque,
// keys mesh.CASecretCertChainKey, CASecretKeyKey, CASecretBundleKey). Save
// creates the Secret, or updates it with the resourceVersion last read, so
// two writers never silently overwrite each other: the control plane calls
// Save only on its leader.
type SecretStore struct {
	client    kubernetes.Interface
	namespace string
	name      string
}

var _ Store = (*SecretStore)(nil)

// NewSecretStore returns a store in Secret namespace/name (usually
// mesh.ControlPlaneNamespace / mesh.CASecretName).
func NewSecretStore(client kubernetes.Interface, namespace, name string) *SecretStore {
	return &SecretStore{client: client, namespace: namespace, name: name}
}

func (s *SecretStore) path() string { return "ca: secret " + s.namespace + "/" + s.name }

// Load implements Store.
func (s *SecretStore) Load(ctx context.Context) (Material, error) {
	sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Material{}, fmt.Errorf("%w in %s/%s", ErrNotFound, s.namespace, s.name)
	}
	if err != nil {
		return Material{}, fmt.Errorf("%s: %w", s.path(), err)
	}
	m := Material{
		CertChainPEM: sec.Data[mesh.CASecretCertChainKey],
		KeyPEM:       sec.Data[mesh.CASecretKeyKey],
		BundlePEM:    sec.Data[mesh.CASecretBundleKey],
	}
	if len(m.CertChainPEM) == 0 || len(m.KeyPEM) == 0 || len(m.BundlePEM) == 0 {
		return Material{}, fmt.Errorf("%s is incomplete: want %s, %s and %s", s.path(), mesh.CASecretCertChainKey, mesh.CASecretKeyKey, mesh.CASecretBundleKey)
	}
	return m, nil
}

// Save implements Store.
func (s *SecretStore) Save(ctx context.Context, m Material) error {
	data := map[string][]byte{
		mesh.CASecretCertChainKey: m.CertChainPEM,
		mesh.CASecretKeyKey:       m.KeyPEM,
		mesh.CASecretBundleKey:    m.BundlePEM,
	}
	secrets := s.client.CoreV1().Secrets(s.namespace)
	cur, err := secrets.Get(ctx, s.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}, metav1.CreateOptions{})
	case err == nil:
		cur.Data = data
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("%s: save: %w", s.path(), err)
	}
	return nil
}
