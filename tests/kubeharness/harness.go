package kubeharness

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Environment variables the harness reads.
const (
	// EnvBinDir overrides where the Kubernetes binaries are.
	EnvBinDir = "WEFT_K8S_BIN"
	// EnvRequire, when set to anything but "" or "0", turns a missing
	// binary into a test failure instead of a skip (CI sets it).
	EnvRequire = "WEFT_REQUIRE_K8S"
)

// Binaries the harness runs.
const (
	BinEtcd              = "etcd"
	BinAPIServer         = "kube-apiserver"
	BinControllerManager = "kube-controller-manager"
	BinKubectl           = "kubectl"
)

// ServiceCIDR is the cluster's Service range (only numbers: no kube-proxy).
const ServiceCIDR = "10.96.0.0/16"

// Cluster is a running control plane.
type Cluster struct {
	// Dir holds the PKI, etcd data, logs and kubeconfig; removed after the test.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kubectl.
	BinDir string
	// Host is the loopback address every component binds.
	Host net.IP
	// URL of the apiserver, https://<host>:<port>.
	URL string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	// CA signed the apiserver's certificate; use it for webhook serving
	// certificates (caBundle = CA.CertPEM).
	CA *CA
	// ControllerManager says whether kube-controller-manager runs.
	ControllerManager bool

	procs []*Process
}

type options struct {
	kcm          bool
	crdDir       string
	noCRDs       bool
	binDir       string
	startTimeout time.Duration
	authz        string
}

// Option configures Start.
type Option func(*options)

// WithControllerManager also runs kube-controller-manager (EndpointSlices,
// default ServiceAccounts, namespace deletion, garbage collection,
// Deployments -> ReplicaSets -> Pods). With no scheduler or kubelet, a test
// "runs" a pod itself: set spec.nodeName to a Node it created
// (CreateNode) and patch the pod's status (podIP, Ready), or lets
// tests/podharness play the scheduler and the kubelet for real.
func WithControllerManager() Option { return func(o *options) { o.kcm = true } }

// WithCRDDir applies the CRDs in dir instead of the repository's api/crds.
func WithCRDDir(dir string) Option { return func(o *options) { o.crdDir = dir } }

// WithoutCRDs skips applying CRDs.
func WithoutCRDs() Option { return func(o *options) { o.noCRDs = true } }

// WithBinDir sets the directory of the binaries (else $WEFT_K8S_BIN, else
// hack/k8s/build.sh's cache directory).
func WithBinDir(dir string) Option { return func(o *options) { o.binDir = dir } }

// WithStartTimeout bounds the whole start (default 120 s: a busy 2-core
// machine can take a while to start the apiserver).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithAuthorizationMode sets --authorization-mode (default RBAC).
func WithAuthorizationMode(mode string) Option { return func(o *options) { o.authz = mode } }

// Start starts a cluster for the test and stops it in t.Cleanup. It skips
// the test when the binaries are missing and WEFT_REQUIRE_K8S is unset.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{startTimeout: 120 * time.Second, authz: "RBAC"}
	for _, f := range opts {
		f(&o)
	}
	bin, err := findBinDir(o.binDir)
	if err == nil {
		need := []string{BinEtcd, BinAPIServer}
		if o.kcm {
			need = append(need, BinControllerManager)
		}
		err = checkBinaries(bin, need...)
	}
	if err != nil {
		if v := os.Getenv(EnvRequire); v != "" && v != "0" {
			t.Fatalf("%v (%s is set, so this is a failure: run hack/k8s/build.sh)", err, EnvRequire)
		}
		t.Skipf("%v: build them with hack/k8s/build.sh (or point %s at them); set %s=1 to fail instead of skipping", err, EnvBinDir, EnvRequire)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.startTimeout)
	defer cancel()
	c := &Cluster{Dir: t.TempDir(), BinDir: bin, ControllerManager: o.kcm}
	t.Cleanup(func() { c.stop(t) })
	start := time.Now()
	if err := c.start(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Logf("kubeharness: cluster at %s ready in %s (dir %s)", c.URL, time.Since(start).Round(time.Millisecond), c.Dir)
	return c
}

func (c *Cluster) stop(t testing.TB) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("kubeharness: tail of %s:\n%s", p.logPath, p.Tail(40))
		}
	}
}

func (c *Cluster) start(ctx context.Context, o options) error {
	// A random loopback address per cluster: tests on this machine run
	// concurrently and must not share ports.
	c.Host = RandomLoopback()
	ports, err := freePorts(ctx, c.Host, 5)
	if err != nil {
		return err
	}
	etcdPort, etcdPeer, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]
	host := c.Host.String()
	hp := func(p int) string { return net.JoinHostPort(host, strconv.Itoa(p)) }
	c.URL = "https://" + hp(apiPort)

	// PKI.
	pki := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	ca, err := NewCA("weft-kubeharness-ca")
	if err != nil {
		return err
	}
	c.CA = ca
	// ca.key: the controller-manager's CSR signer uses the cluster CA.
	files := map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.keyPEM}
	svcIP := net.IPv4(10, 96, 0, 1)
	if files["apiserver.crt"], files["apiserver.key"], err = ca.IssueServing("kube-apiserver",
		[]net.IP{c.Host, net.IPv4(127, 0, 0, 1), svcIP},
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return err
	}
	adminCert, adminKey, err := ca.IssueClient("admin", "system:masters")
	if err != nil {
		return err
	}
	files["admin.crt"], files["admin.key"] = adminCert, adminKey
	kcmCert, kcmKey, err := ca.IssueClient("system:kube-controller-manager")
	if err != nil {
		return err
	}
	if files["sa.key"], files["sa.pub"], err = newServiceAccountKey(); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(pki, name), b, 0o600); err != nil {
			return err
		}
	}
	f := func(name string) string { return filepath.Join(pki, name) }
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.URL, ca.CertPEM, "admin", adminCert, adminKey); err != nil {
		return err
	}
	kcmKubeconfig := filepath.Join(c.Dir, "kcm.kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, c.URL, ca.CertPEM, "system:kube-controller-manager", kcmCert, kcmKey); err != nil {
		return err
	}
	c.RESTConfig = &rest.Config{
		Host:            c.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM, CertData: adminCert, KeyData: adminKey},
		QPS:             100, Burst: 200,
		Timeout: 30 * time.Second,
	}

	// etcd.
	etcd, err := startProc(BinEtcd, filepath.Join(c.BinDir, BinEtcd), filepath.Join(c.Dir, "etcd.log"),
		"--name=default", "--data-dir="+filepath.Join(c.Dir, "etcd-data"),
		"--listen-client-urls=http://"+hp(etcdPort), "--advertise-client-urls=http://"+hp(etcdPort),
		"--listen-peer-urls=http://"+hp(etcdPeer), "--initial-advertise-peer-urls=http://"+hp(etcdPeer),
		"--initial-cluster=default=http://"+hp(etcdPeer),
		"--listen-metrics-urls=",
		// Test data only: much faster on slow or shared disks.
		"--unsafe-no-fsync", "--quota-backend-bytes=2147483648", "--log-level=warn")
	if err != nil {
		return err
	}
	c.procs = append(c.procs, etcd)
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := etcd.WaitReady(ctx, plain, "http://"+hp(etcdPort)+"/health", func(code int, body []byte) bool {
		return code == 200 && strings.Contains(string(body), `"health":"true"`)
	}); err != nil {
		return err
	}

	// kube-apiserver.
	api, err := startProc(BinAPIServer, filepath.Join(c.BinDir, BinAPIServer), filepath.Join(c.Dir, "kube-apiserver.log"),
		"--etcd-servers=http://"+hp(etcdPort),
		"--bind-address="+host, "--advertise-address="+host, "--secure-port="+strconv.Itoa(apiPort),
		// 1.37 refuses a loopback advertise address for the "kubernetes"
		// Service endpoints: no reconciler, no endpoints.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+f("apiserver.crt"), "--tls-private-key-file="+f("apiserver.key"),
		"--client-ca-file="+f("ca.crt"),
		"--service-account-key-file="+f("sa.pub"), "--service-account-signing-key-file="+f("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode="+o.authz, "--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	c.procs = append(c.procs, api)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.adminTLS(adminCert, adminKey)}}
	defer tlsClient.CloseIdleConnections()
	if err := api.WaitReady(ctx, tlsClient, c.URL+"/readyz", func(code int, _ []byte) bool { return code == 200 }); err != nil {
		return err
	}
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return fmt.Errorf("kubeharness: client: %w", err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.RESTConfig); err != nil {
		return fmt.Errorf("kubeharness: dynamic client: %w", err)
	}

	// kube-controller-manager.
	if o.kcm {
		kcm, err := startProc(BinControllerManager, filepath.Join(c.BinDir, BinControllerManager), filepath.Join(c.Dir, "kube-controller-manager.log"),
			"--kubeconfig="+kcmKubeconfig,
			"--authentication-kubeconfig="+kcmKubeconfig, "--authorization-kubeconfig="+kcmKubeconfig,
			"--bind-address="+host, "--secure-port="+strconv.Itoa(kcmPort),
			"--leader-elect=false", "--use-service-account-credentials=true",
			"--service-account-private-key-file="+f("sa.key"), "--root-ca-file="+f("ca.crt"),
			"--cluster-signing-cert-file="+f("ca.crt"), "--cluster-signing-key-file="+f("ca.key"),
			// No kubelets: heartbeat-less Nodes must not be tainted and evicted.
			"--controllers=*,-node-lifecycle-controller,-taint-eviction-controller,-device-taint-eviction-controller,-node-ipam-controller",
			"--v=1")
		if err != nil {
			return err
		}
		c.procs = append(c.procs, kcm)
		// Its serving certificate is self-signed in memory; only /healthz is read.
		insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // G402: loopback health check of a test process with a throwaway cert.
		}}
		defer insecure.CloseIdleConnections()
		if err := kcm.WaitReady(ctx, insecure, "https://"+hp(kcmPort)+"/healthz", func(code int, _ []byte) bool { return code == 200 }); err != nil {
			return err
		}
		// Controllers run once the ServiceAccount controller made "default".
		if err := c.waitServiceAccount(ctx, metav1.NamespaceDefault); err != nil {
			return fmt.Errorf("%w; log:\n%s", err, kcm.Tail(30))
		}
	}

	if !o.noCRDs {
		dir := o.crdDir
		if dir == "" {
			root, err := repoRoot()
			if err != nil {
				return err
			}
			dir = filepath.Join(root, "api", "crds")
		}
		if err := c.ApplyCRDs(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) adminTLS(cert, key []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.CertPEM)
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func writeKubeconfig(path, server string, caPEM []byte, user string, cert, key []byte) error {
	b64 := base64.StdEncoding.EncodeToString
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: weft-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: weft-test
  context: {cluster: weft-test, user: %q}
current-context: weft-test
`, server, b64(caPEM), user, b64(cert), b64(key), user)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("kubeharness: kubeconfig: %w", err)
	}
	return nil
}

// ApplyCRDs creates (or updates) every CRD in dir/*.yaml and waits until
// each is Established.
func (c *Cluster) ApplyCRDs(ctx context.Context, dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("kubeharness: crds: %w", err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("kubeharness: crds: no *.yaml in %s", dir)
	}
	crds := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("kubeharness: crds: %w", err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("kubeharness: crd %s: %w", p, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, err := crds.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("kubeharness: crd %s: %w", p, err)
			}
			cur, gerr := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
			if gerr != nil {
				return fmt.Errorf("kubeharness: crd %s: %w", p, gerr)
			}
			u.SetResourceVersion(cur.GetResourceVersion())
			if _, err := crds.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("kubeharness: crd %s: %w", p, err)
			}
		}
		names = append(names, u.GetName())
	}
	for _, name := range names {
		if err := poll(ctx, func() (bool, error) {
			u, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // retried until the deadline
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cnd := range conds {
				m, _ := cnd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return fmt.Errorf("kubeharness: crd %s not Established: %w", name, err)
		}
	}
	return nil
}

// CreateNamespace creates a namespace with labels and makes sure its
// "default" ServiceAccount exists (made here without a controller-manager,
// waited for with one), so pods can be created in it at once.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubeharness: namespace %s: %w", name, err)
	}
	if !c.ControllerManager {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
		if _, err := c.Client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubeharness: namespace %s: service account: %w", name, err)
		}
	}
	return c.waitServiceAccount(ctx, name)
}

// CreateNode registers a Node object (no kubelet behind it) so the
// EndpointSlice controller publishes pods bound to it.
func (c *Cluster) CreateNode(ctx context.Context, name string) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubeharness: node %s: %w", name, err)
	}
	return nil
}

func (c *Cluster) waitServiceAccount(ctx context.Context, ns string) error {
	err := poll(ctx, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kubeharness: namespace %s: no default ServiceAccount: %w", ns, err)
	}
	return nil
}

// poll calls cond every 100 ms until it is true, returns an error, or ctx ends.
func poll(ctx context.Context, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BinDir returns where the Kubernetes binaries are expected: $WEFT_K8S_BIN,
// else ${XDG_CACHE_HOME:-$HOME/.cache}/weft/k8s-v<K8S_VERSION>/bin with the
// version from hack/k8s/versions.env (the same rule as hack/k8s/build.sh,
// including WEFT_K8S_CACHE).
func BinDir() (string, error) { return findBinDir("") }

func findBinDir(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if d := os.Getenv(EnvBinDir); d != "" {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	version, err := readVersion(filepath.Join(root, "hack", "k8s", "versions.env"), "K8S_VERSION")
	if err != nil {
		return "", err
	}
	cache := os.Getenv("WEFT_K8S_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("kubeharness: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "weft")
	}
	return filepath.Join(cache, "k8s-v"+version, "bin"), nil
}

func checkBinaries(dir string, names ...string) error {
	var missing []string
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubeharness: %s missing in %s", strings.Join(missing, ", "), dir)
	}
	return nil
}

// readVersion reads KEY=value from a shell env file (comments allowed).
func readVersion(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kubeharness: %w", err)
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		if i := strings.IndexByte(v, '#'); i >= 0 {
			v = v[:i]
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		if v != "" {
			return v, nil
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("kubeharness: %s: %w", path, err)
	}
	return "", fmt.Errorf("kubeharness: %s: no %s", path, key)
}

// RepoRoot is the directory holding go.work, found from the working
// directory upwards.
func RepoRoot() (string, error) { return repoRoot() }

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("kubeharness: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubeharness: no go.work above the working directory")
		}
		dir = parent
	}
}
