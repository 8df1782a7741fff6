package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/crds"
	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/control-plane/cmd/weftctl/internal/debugclient"
)

// checkOptions are `weftctl check`'s flags.
type checkOptions struct {
	kubeconfig, context, namespace, controlPlane string
	certWarn, timeout                            time.Duration
}

// newCheckCommand is `weftctl check`: preflight and post-install checks
// against the cluster of the user's kubeconfig, one PASS/WARN/FAIL line per
// finding; it fails (exit 1) when any check FAILs.
func newCheckCommand() *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a cluster before and after installing Weft (PASS/WARN/FAIL; exit 1 on FAIL)",
		Long: `Checks, against the cluster of your kubeconfig: the API server version and
native sidecar support (>= 1.29), the weft.dev CRDs (installed, and the same
as this weftctl's), the control plane Deployment, the injection webhook
(reachable, certificate valid for its caBundle), which namespaces are enabled,
pods in enabled namespaces without a sidecar, and NetworkPolicies whose egress
forgets DNS. With --control-plane (a debug address, e.g. after
kubectl -n weft-system port-forward deploy/weft-control-plane 15014), also
proxies out of sync and certificates near expiry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			return runCheck(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "kubeconfig context")
	f.StringVar(&o.namespace, "namespace", mesh.ControlPlaneNamespace, "Weft's namespace")
	f.StringVar(&o.controlPlane, "control-plane", "", "control plane debug address (host:port or URL) for proxy sync and certificate checks")
	f.DurationVar(&o.certWarn, "cert-warn", time.Hour, "warn about proxy certificates expiring within this")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound for all checks")
	return cmd
}

type level string

const (
	pass level = "PASS"
	warn level = "WARN"
	fail level = "FAIL"
)

// checker runs the checks and counts failures.
type checker struct {
	out   io.Writer
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	opts  checkOptions
	now   time.Time
	fails int
}

func (c *checker) report(l level, check, format string, args ...any) {
	if l == fail {
		c.fails++
	}
	_, _ = fmt.Fprintf(c.out, "%s  %-16s %s\n", l, check, fmt.Sprintf(format, args...))
}

func runCheck(ctx context.Context, o checkOptions, out io.Writer) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context}).ClientConfig()
	if err != nil {
		return fmt.Errorf("check: kubeconfig: %w", err)
	}
	rc.Timeout = 10 * time.Second
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	c := &checker{out: out, kube: kube, dyn: dyn, opts: o, now: time.Now()}
	c.version()
	c.crds(ctx)
	c.controlPlane(ctx)
	c.webhook(ctx)
	enabled := c.namespaces(ctx)
	c.pods(ctx, enabled)
	c.networkPolicies(ctx)
	if o.controlPlane != "" {
		c.proxies(ctx)
	}
	if c.fails > 0 {
		return fmt.Errorf("check: %d check(s) failed", c.fails)
	}
	return nil
}

func (c *checker) version() {
	v, err := c.kube.Discovery().ServerVersion()
	if err != nil {
		c.report(fail, "api-server", "cannot reach the API server: %v", err)
		return
	}
	minor, _ := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	major, _ := strconv.Atoi(v.Major)
	if major > 1 || minor >= mesh.NativeSidecarMinMinor {
		c.report(pass, "api-server", "Kubernetes %s: native sidecars supported", v.GitVersion)
		return
	}
	c.report(warn, "api-server", "Kubernetes %s has no native sidecars (needs 1.%d): install with proxy.nativeSidecar=false", v.GitVersion, mesh.NativeSidecarMinMinor)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crds compares every CRD this build embeds with the cluster's: same
// versions (served, storage) and the same schemas.
func (c *checker) crds(ctx context.Context) {
	files, err := fs.Glob(crds.FS, "*.yaml")
	if err != nil || len(files) == 0 {
		c.report(fail, "crds", "no embedded CRDs: %v", err)
		return
	}
	for _, f := range files {
		b, err := crds.FS.ReadFile(f)
		if err != nil {
			c.report(fail, "crds", "%s: %v", f, err)
			continue
		}
		var want map[string]any
		if err := yaml.Unmarshal(b, &want); err != nil {
			c.report(fail, "crds", "%s: %v", f, err)
			continue
		}
		name, _ := dig(want, "metadata", "name").(string)
		got, err := c.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.report(fail, "crds", "%s is not installed (helm install, or kubectl apply -f charts/weft/files/crds)", name)
			continue
		case err != nil:
			c.report(fail, "crds", "%s: %v", name, err)
			continue
		}
		if diff := crdDiff(normalize(dig(want, "spec", "versions")), normalize(dig(got.Object, "spec", "versions"))); diff != "" {
			c.report(fail, "crds", "%s is not current (%s): helm upgrade, or kubectl apply -f charts/weft/files/crds", name, diff)
			continue
		}
		c.report(pass, "crds", "%s installed and current", name)
	}
}

// crdDiff compares versions by name, served, storage and schema.
func crdDiff(want, got any) string {
	w, _ := want.([]any)
	g, _ := got.([]any)
	index := func(vs []any) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, v := range vs {
			if vm, ok := v.(map[string]any); ok {
				n, _ := vm["name"].(string)
				m[n] = vm
			}
		}
		return m
	}
	wi, gi := index(w), index(g)
	for n, wv := range wi {
		gv, ok := gi[n]
		if !ok {
			return "version " + n + " missing"
		}
		for _, k := range []string{"served", "storage"} {
			if wv[k] != gv[k] {
				return fmt.Sprintf("version %s %s=%v, want %v", n, k, gv[k], wv[k])
			}
		}
		if !reflect.DeepEqual(dig(wv, "schema", "openAPIV3Schema"), dig(gv, "schema", "openAPIV3Schema")) {
			return "version " + n + " schema differs"
		}
	}
	return ""
}

// normalize round-trips v through JSON so numbers compare alike (YAML
// gives float64, the API client int64).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

func dig(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func (c *checker) controlPlane(ctx context.Context) {
	d, err := c.kube.AppsV1().Deployments(c.opts.namespace).Get(ctx, mesh.ControlPlaneDeployment, metav1.GetOptions{})
	if err != nil {
		c.report(fail, "control-plane", "Deployment %s/%s: %v", c.opts.namespace, mesh.ControlPlaneDeployment, err)
		return
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch ready := d.Status.ReadyReplicas; {
	case ready == 0:
		c.report(fail, "control-plane", "%s/%s: 0/%d replicas ready (kubectl -n %s describe deploy %s)", c.opts.namespace, d.Name, want, c.opts.namespace, d.Name)
	case ready < want:
		c.report(warn, "control-plane", "%s/%s: %d/%d replicas ready", c.opts.namespace, d.Name, ready, want)
	default:
		c.report(pass, "control-plane", "%s/%s: %d/%d replicas ready", c.opts.namespace, d.Name, ready, want)
	}
}

// webhook checks the configuration, the serving certificate against the
// caBundle, and that the webhook answers.
func (c *checker) webhook(ctx context.Context) {
	w, err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		c.report(fail, "webhook", "MutatingWebhookConfiguration %s: %v", mesh.WebhookConfigName, err)
		return
	}
	if len(w.Webhooks) == 0 {
		c.report(fail, "webhook", "%s has no webhooks", w.Name)
		return
	}
	cc := w.Webhooks[0].ClientConfig
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cc.CABundle) {
		c.report(fail, "webhook", "%s: caBundle holds no certificate", w.Name)
		return
	}
	if cc.URL != nil {
		c.webhookURL(ctx, *cc.URL, roots)
		return
	}
	// Service-backed: verify the Secret's certificate, then call the webhook
	// through the API server's service proxy.
	s, err := c.kube.CoreV1().Secrets(c.opts.namespace).Get(ctx, mesh.WebhookTLSSecret, metav1.GetOptions{})
	if err != nil {
		c.report(fail, "webhook", "Secret %s: %v", mesh.WebhookTLSSecret, err)
	} else if err := verifyPEM(s.Data[corev1.TLSCertKey], roots, svcDNS(cc), c.now); err != nil {
		c.report(fail, "webhook", "serving certificate: %v", err)
	} else {
		c.report(pass, "webhook", "serving certificate valid for the caBundle and %s", svcDNS(cc))
	}
	if cc.Service == nil {
		return
	}
	port := int32(443)
	if cc.Service.Port != nil {
		port = *cc.Service.Port
	}
	res := c.kube.CoreV1().Services(cc.Service.Namespace).ProxyGet("https", cc.Service.Name, strconv.Itoa(int(port)), "/healthz", nil)
	if _, err := res.DoRaw(ctx); err != nil {
		c.report(fail, "webhook", "service %s/%s:%d not reachable through the API server: %v", cc.Service.Namespace, cc.Service.Name, port, err)
		return
	}
	c.report(pass, "webhook", "service %s/%s:%d answers /healthz", cc.Service.Namespace, cc.Service.Name, port)
}

// svcDNS is the name the API server verifies a service webhook's
// certificate for: <service>.<namespace>.svc.
func svcDNS(cc admissionregistrationv1.WebhookClientConfig) string {
	if cc.Service == nil {
		return ""
	}
	return cc.Service.Name + "." + cc.Service.Namespace + ".svc"
}

func (c *checker) webhookURL(ctx context.Context, raw string, roots *x509.CertPool) {
	u, err := url.Parse(raw)
	if err != nil {
		c.report(fail, "webhook", "url %q: %v", raw, err)
		return
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: "https", Host: u.Host, Path: "/healthz"}).String(), nil)
	if err != nil {
		c.report(fail, "webhook", "%v", err)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.report(fail, "webhook", "%s not reachable with the caBundle: %v", u.Host, err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		leaf := resp.TLS.PeerCertificates[0]
		if left := leaf.NotAfter.Sub(c.now); left < 30*24*time.Hour {
			c.report(warn, "webhook", "serving certificate expires in %s", left.Round(time.Hour))
		}
	}
	if resp.StatusCode != http.StatusOK {
		c.report(fail, "webhook", "%s/healthz: %s", u.Host, resp.Status)
		return
	}
	c.report(pass, "webhook", "%s reachable, certificate valid for the caBundle", u.Host)
}

// verifyPEM checks a PEM leaf against roots for dnsName (if set) at now.
func verifyPEM(certPEM []byte, roots *x509.CertPool, dnsName string, now time.Time) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsName, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func (c *checker) namespaces(ctx context.Context) []string {
	l, err := c.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: mesh.LabelInject + "=" + mesh.InjectEnabled})
	if err != nil {
		c.report(fail, "namespaces", "%v", err)
		return nil
	}
	var names []string
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	if len(names) == 0 {
		c.report(warn, "namespaces", "no namespace is enabled (kubectl label namespace <ns> %s=%s)", mesh.LabelInject, mesh.InjectEnabled)
		return nil
	}
	c.report(pass, "namespaces", "injection enabled in %s", strings.Join(names, ", "))
	return names
}

func (c *checker) pods(ctx context.Context, namespaces []string) {
	for _, ns := range namespaces {
		l, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			c.report(fail, "pods", "%s: %v", ns, err)
			continue
		}
		var missing []string
		for _, p := range l.Items {
			if p.Labels[mesh.LabelInject] == mesh.InjectDisabled || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			if !hasSidecar(&p) {
				missing = append(missing, p.Name)
			}
		}
		if len(missing) == 0 {
			c.report(pass, "pods", "%s: all %d pods have a sidecar", ns, len(l.Items))
			continue
		}
		slices.Sort(missing)
		c.report(warn, "pods", "%s: %d pod(s) without a sidecar (created before the label? restart them): %s", ns, len(missing), strings.Join(missing, ", "))
	}
}

func hasSidecar(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == mesh.ContainerSidecar {
				return true
			}
		}
	}
	return false
}

// networkPolicies warns about egress-isolating policies none of whose
// rules allow port 53: the workloads they select lose DNS (as in
// Kubernetes). A rule with no ports allows every port.
func (c *checker) networkPolicies(ctx context.Context) {
	l, err := c.kube.NetworkingV1().NetworkPolicies(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		c.report(fail, "netpol-dns", "%v", err)
		return
	}
	bad := 0
	for _, np := range l.Items {
		if !isEgress(&np) || allowsDNS(np.Spec.Egress) {
			continue
		}
		bad++
		c.report(warn, "netpol-dns", "%s/%s isolates egress but allows no port 53 (UDP/TCP): selected pods lose DNS", np.Namespace, np.Name)
	}
	if bad == 0 {
		c.report(pass, "netpol-dns", "%d NetworkPolicies, none forgets DNS", len(l.Items))
	}
}

func isEgress(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

func allowsDNS(rules []networkingv1.NetworkPolicyEgressRule) bool {
	for _, r := range rules {
		if len(r.Ports) == 0 {
			return true
		}
		for _, p := range r.Ports {
			if p.Port == nil {
				return true
			}
			if p.Port.IntValue() == 53 || (p.EndPort != nil && p.Port.IntValue() <= 53 && int(*p.EndPort) >= 53) || p.Port.StrVal == "dns" {
				return true
			}
		}
	}
	return false
}

// proxies reads the control plane's debug API: proxies whose last push is
// NACKed or not yet ACKed, and certificates near expiry.
func (c *checker) proxies(ctx context.Context) {
	dc, err := debugclient.New(c.opts.controlPlane)
	if err != nil {
		c.report(fail, "proxies", "%v", err)
		return
	}
	ps, err := dc.Proxies(ctx)
	if err != nil {
		c.report(fail, "proxies", "control plane debug API %s: %v", c.opts.controlPlane, err)
		return
	}
	stale := 0
	for _, p := range ps {
		for typ, v := range p.Versions {
			switch {
			case v.Nack != "":
				stale++
				c.report(fail, "proxies", "%s NACKed %s: %s", p.ID, typ, v.Nack)
			case v.Sent != "" && v.Sent != v.Acked:
				stale++
				c.report(warn, "proxies", "%s: %s sent %s, ACKed %q", p.ID, typ, v.Sent, v.Acked)
			}
		}
	}
	if stale == 0 {
		c.report(pass, "proxies", "%d proxies connected, all in sync", len(ps))
	}
	certs, err := dc.Certs(ctx)
	if err != nil {
		c.report(fail, "certs", "%v", err)
		return
	}
	near := 0
	for _, ct := range certs {
		switch left := ct.NotAfter.Sub(c.now); {
		case left <= 0:
			near++
			c.report(fail, "certs", "%s: certificate expired at %s", ct.Proxy, ct.NotAfter.Format(time.RFC3339))
		case left < c.opts.certWarn:
			near++
			c.report(warn, "certs", "%s: certificate expires in %s", ct.Proxy, left.Round(time.Second))
		}
	}
	if near == 0 {
		c.report(pass, "certs", "%d proxy certificates, none expires within %s", len(certs), c.opts.certWarn)
	}
}
