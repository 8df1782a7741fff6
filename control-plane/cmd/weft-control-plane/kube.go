package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/ca"
	"github.com/weftmesh/weft/control-plane/leader"
	"github.com/weftmesh/weft/control-plane/registry/kube"
)

// KubeConfig is the configuration of --registry=kube.
type KubeConfig struct {
	// Kubeconfig is the kubeconfig file; empty means in-cluster.
	Kubeconfig string
	// Namespace is the control plane's own namespace (CA Secret, Lease).
	Namespace string
	// Resync is the informers' resync period.
	Resync time.Duration
	// LeaderElect turns leader election on (off: this replica always leads).
	LeaderElect bool
	// Identity names this replica in the Lease (default host name + pid).
	Identity string
	// LeaseDuration, RenewDeadline, RetryPeriod are the election timings.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// WebhookConfig names a MutatingWebhookConfiguration whose webhooks'
	// caBundle the leader keeps equal to the mesh CA's roots (the injector
	// serving certificate is issued by the mesh CA); empty: not managed.
	WebhookConfig string
	// Audience is the projected token audience the TokenReview asks for.
	Audience string
}

func (k *KubeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&k.Kubeconfig, "kubeconfig", "", "kubeconfig for --registry=kube (empty: in-cluster config)")
	fs.StringVar(&k.Namespace, "namespace", mesh.ControlPlaneNamespace, "the control plane's namespace (CA Secret, leader Lease)")
	fs.DurationVar(&k.Resync, "resync", kube.DefaultResync, "informer resync period (a resync that changes nothing pushes nothing)")
	fs.BoolVar(&k.LeaderElect, "leader-elect", true, "elect a leader among replicas with a Lease; only the leader writes to the API server")
	fs.StringVar(&k.Identity, "leader-identity", "", "this replica's name in the Lease (default <hostname>-<pid>)")
	fs.DurationVar(&k.LeaseDuration, "leader-lease-duration", leader.DefaultLeaseDuration, "leader Lease duration")
	fs.DurationVar(&k.RenewDeadline, "leader-renew-deadline", leader.DefaultRenewDeadline, "leader renew deadline")
	fs.DurationVar(&k.RetryPeriod, "leader-retry-period", leader.DefaultRetryPeriod, "leader election retry period")
	fs.StringVar(&k.WebhookConfig, "webhook-config", "", "MutatingWebhookConfiguration whose caBundle the leader keeps at the mesh CA roots")
	fs.StringVar(&k.Audience, "token-audience", mesh.TokenAudience, "audience of the projected ServiceAccount tokens sidecars present")
}

func (k KubeConfig) validate() []error {
	var errs []error
	if k.LeaderElect && (k.LeaseDuration <= k.RenewDeadline || k.RenewDeadline <= k.RetryPeriod || k.RetryPeriod <= 0) {
		errs = append(errs, errors.New("leader timings: want --leader-lease-duration > --leader-renew-deadline > --leader-retry-period > 0"))
	}
	if k.Resync < 0 {
		errs = append(errs, errors.New("--resync must not be negative"))
	}
	return errs
}

// kubeEnv is the kube mode's clients and elector.
type kubeEnv struct {
	cfg     KubeConfig
	client  kubernetes.Interface
	dyn     dynamic.Interface
	elector *leader.Elector // nil without --leader-elect
	log     *slog.Logger
}

func newKubeEnv(cfg KubeConfig, log *slog.Logger) (*kubeEnv, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: kube: config: %w", err)
	}
	rc.UserAgent = "weft-control-plane"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: kube: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("weft-control-plane: kube: %w", err)
	}
	k := &kubeEnv{cfg: cfg, client: client, dyn: dyn, log: log}
	if cfg.LeaderElect {
		id := cfg.Identity
		if id == "" {
			host, _ := os.Hostname()
			id = host + "-" + strconv.Itoa(os.Getpid())
		}
		k.elector = leader.New(client, cfg.Namespace, mesh.LeaderLeaseName, id,
			leader.WithTimings(cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod),
			leader.WithLogger(log.With("component", "leader")))
	}
	return k, nil
}

func (k *kubeEnv) isLeader() bool { return k.elector == nil || k.elector.IsLeader() }

// openAuthority opens the CA from its Secret. Only the leader creates it:
// another replica waits until the Secret exists (or until it leads).
func (k *kubeEnv) openAuthority(ctx context.Context, td spiffeid.TrustDomain, opts []ca.Option) (*ca.Authority, error) {
	store := ca.NewSecretStore(k.client, k.cfg.Namespace, mesh.CASecretName)
	opts = append(opts, ca.WithStore(store))
	waiting := false
	for {
		m, err := store.Load(ctx)
		switch {
		case err == nil:
			a, err := ca.New(td, m, opts...)
			if err != nil {
				return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
			}
			return a, nil
		case errors.Is(err, ca.ErrNotFound) && k.isLeader():
			a, err := ca.Open(ctx, td, store, opts...)
			if err != nil {
				return nil, fmt.Errorf("weft-control-plane: ca: %w", err)
			}
			return a, nil
		case errors.Is(err, ca.ErrNotFound):
			if !waiting {
				k.log.Info("ca: waiting for the leader to create the CA secret", "secret", k.cfg.Namespace+"/"+mesh.CASecretName)
				waiting = true
			}
		default:
			k.log.Warn("ca: cannot read the CA secret; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("weft-control-plane: ca: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runElection campaigns (with --leader-elect) and runs the leader's writes
// while leading; bundle returns the current trust bundle (PEM), or nil
// while there is none (no CA, or not open yet).
func (k *kubeEnv) runElection(ctx context.Context, bundle func() []byte) error {
	lead := func(ctx context.Context) { k.lead(ctx, bundle) }
	if k.elector == nil {
		lead(ctx)
		return nil
	}
	if err := k.elector.Run(ctx, lead); err != nil {
		return fmt.Errorf("weft-control-plane: %w", err)
	}
	return nil
}

// lead keeps, while ctx lasts, the ConfigMap mesh.TrustBundleConfigMap in
// every namespace labelled for injection, and the webhook caBundle, equal to
// the trust bundle: on every namespace event and every second (the bundle
// changes with root rotation).
func (k *kubeEnv) lead(ctx context.Context, bundle func() []byte) {
	sel := labels.SelectorFromSet(labels.Set{mesh.LabelInject: mesh.InjectEnabled})
	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = sel.String()
	}))
	nsInformer := factory.Core().V1().Namespaces()
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() }, UpdateFunc: func(any, any) { notify() },
	}); err != nil {
		k.log.Error("leader: namespace informer", "err", err)
		return
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		roots := bundle() // nil until the CA is open
		nss, err := nsInformer.Lister().List(labels.Everything())
		if err == nil && roots != nil {
			for _, ns := range nss {
				if err := k.ensureBundleConfigMap(ctx, ns.Name, roots); err != nil && ctx.Err() == nil {
					k.log.Warn("leader: trust bundle configmap", "namespace", ns.Name, "err", err)
				}
			}
		}
		if k.cfg.WebhookConfig != "" && roots != nil {
			if err := k.ensureWebhookCABundle(ctx, roots); err != nil && ctx.Err() == nil {
				k.log.Warn("leader: webhook caBundle", "webhook", k.cfg.WebhookConfig, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

func (k *kubeEnv) ensureBundleConfigMap(ctx context.Context, ns string, roots []byte) error {
	cms := k.client.CoreV1().ConfigMaps(ns)
	cur, err := cms.Get(ctx, mesh.TrustBundleConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: mesh.TrustBundleConfigMap, Namespace: ns},
			Data:       map[string]string{mesh.TrustBundleKey: string(roots)},
		}, metav1.CreateOptions{})
		if err == nil {
			k.log.Info("leader: trust bundle configmap created", "namespace", ns)
		}
		return err
	case err != nil:
		return err
	case cur.Data[mesh.TrustBundleKey] == string(roots):
		return nil
	}
	if cur.Data == nil {
		cur.Data = map[string]string{}
	}
	cur.Data[mesh.TrustBundleKey] = string(roots)
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

func (k *kubeEnv) ensureWebhookCABundle(ctx context.Context, roots []byte) error {
	whs := k.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cur, err := whs.Get(ctx, k.cfg.WebhookConfig, metav1.GetOptions{})
	if err != nil {
		return err
	}
	changed := false
	for i := range cur.Webhooks {
		if !bytes.Equal(cur.Webhooks[i].ClientConfig.CABundle, roots) {
			cur.Webhooks[i].ClientConfig.CABundle = roots
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err = whs.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// validateKube checks the CA flags in kube mode, where the CA lives in a
// Secret unless --ca-dir or --ca-cert say otherwise and TokenReview
// authenticates (no join tokens needed).
func (c CAConfig) validateKube() []error {
	var errs []error
	supplied := c.Cert != "" || c.Key != "" || c.Chain != "" || c.Roots != ""
	switch {
	case c.Dir != "" && supplied:
		errs = append(errs, errors.New("--ca-dir and --ca-cert/--ca-key/--ca-chain/--ca-roots are exclusive"))
	case supplied && (c.Cert == "" || c.Key == ""):
		errs = append(errs, errors.New("--ca-cert and --ca-key go together"))
	}
	if c.CertLifetime <= 0 {
		errs = append(errs, errors.New("--cert-lifetime must be positive"))
	}
	return errs
}

// kube completes the security of kube mode: the CA from its Secret (or
// --ca-dir / --ca-cert), TokenReview as the authenticator.
func (s *security) kube(ctx context.Context, cfg Config, k *kubeEnv, log *slog.Logger) (*security, error) {
	var a *ca.Authority
	var err error
	if cfg.CA.enabled() {
		a, err = openAuthority(ctx, cfg, log.With("component", "ca"), s.metrics)
	} else {
		var td spiffeid.TrustDomain
		if td, err = spiffeid.TrustDomainFromString(cfg.Mesh.TrustDomain); err != nil {
			return nil, fmt.Errorf("weft-control-plane: ca: trust domain: %w", err)
		}
		a, err = k.openAuthority(ctx, td, []ca.Option{
			ca.WithLifetime(cfg.CA.CertLifetime),
			ca.WithLogger(log.With("component", "ca")), ca.WithObserver(s.metrics),
		})
	}
	if err != nil {
		return nil, err
	}
	s.authority = a
	s.auth = ca.NewTokenReviewer(k.client, cfg.Kube.Audience)
	if s.self, err = newSelfIdentity(a, log.With("component", "identity")); err != nil {
		return nil, fmt.Errorf("weft-control-plane: %w", err)
	}
	return s, nil
}

// bundlePEM is the authority's trust bundle as PEM.
func bundlePEM(a *ca.Authority) *[]byte {
	b := ca.EncodeCertificatesPEM(a.Bundle())
	return &b
}

func deref(b *[]byte) []byte {
	if b == nil {
		return nil
	}
	return *b
}
