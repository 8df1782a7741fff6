package helm

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftmesh/weft/api/mesh"
)

// kubeVersion is what `helm lint`/`template` assume (the chart needs >= 1.29).
const kubeVersion = "v1.33.0"

func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("charts/weft/ci: want at least 5 values files (defaults, HA, egress gateway, tracing, external CA), got %v (%v)", files, err)
	}
	return files
}

func TestLintAndTemplate(t *testing.T) {
	h := newHelm(t, "")
	chart := chartDir(t)
	for _, f := range valuesFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, _, err := h.run(t.Context(), "lint", "--strict", "--kube-version", kubeVersion, "--namespace", releaseNS, "-f", f, chart); err != nil {
				t.Fatal(err)
			}
			out, _, err := h.run(t.Context(), "template", "weft", chart, "--kube-version", kubeVersion, "--namespace", releaseNS, "-f", f)
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, decodeObjects(t, out), filepath.Base(f))
		})
	}
}

func toTyped[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &v
}

// checkRendered checks what every values file must keep true.
func checkRendered(t *testing.T, objs []*unstructured.Unstructured, file string) {
	t.Helper()
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != mesh.ControlPlaneNamespace {
			t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), ns)
		}
	}
	crds := 0
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds++
			if o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s is not kept on uninstall", o.GetName())
			}
		}
	}
	if crds != 4 {
		t.Errorf("%d CRDs rendered, want the 4 of api/crds", crds)
	}
	du := find(objs, "Deployment", mesh.ControlPlaneDeployment)
	if du == nil {
		t.Fatalf("no Deployment %s", mesh.ControlPlaneDeployment)
	}
	d := toTyped[appsv1.Deployment](t, du)
	checkPodSecurity(t, &d.Spec.Template.Spec)
	if d.Spec.Template.Spec.ServiceAccountName != mesh.ControlPlaneServiceAccount {
		t.Errorf("control plane runs as %q, want %q", d.Spec.Template.Spec.ServiceAccountName, mesh.ControlPlaneServiceAccount)
	}
	if d.Spec.Template.Labels[mesh.LabelInject] != mesh.InjectDisabled {
		t.Errorf("control plane pods are not opted out of injection")
	}
	replicas := *d.Spec.Replicas
	switch file {
	case "default-values.yaml":
		if replicas != 2 {
			t.Errorf("default replicas %d, want 2", replicas)
		}
	case "ha-values.yaml":
		if d.Spec.Template.Spec.Affinity == nil || d.Spec.Template.Spec.Affinity.PodAntiAffinity == nil ||
			len(d.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Errorf("HA: no required anti-affinity")
		}
	}
	args := containerArgs(t, d, "weft-control-plane")
	if replicas > 1 {
		if find(objs, "PodDisruptionBudget", mesh.ControlPlaneDeployment) == nil {
			t.Errorf("%d replicas without a PodDisruptionBudget", replicas)
		}
		if !slices.Contains(args, "--leader-elect=true") {
			t.Errorf("%d replicas without --leader-elect=true: %q", replicas, args)
		}
	}
	svc := find(objs, "Service", mesh.ControlPlaneService)
	if svc == nil {
		t.Fatalf("no Service %s", mesh.ControlPlaneService)
	}
	var ports []int32
	for _, p := range toTyped[corev1.Service](t, svc).Spec.Ports {
		ports = append(ports, p.Port)
	}
	slices.Sort(ports)
	if want := []int32{mesh.PortXDS, mesh.PortDebug, mesh.PortWebhook}; !slices.Equal(ports, want) {
		t.Errorf("control plane Service ports %v, want %v", ports, want)
	}
	if find(objs, "ConfigMap", mesh.MeshConfigMapName) == nil {
		t.Errorf("no ConfigMap %s", mesh.MeshConfigMapName)
	}
	if find(objs, "MutatingWebhookConfiguration", mesh.WebhookConfigName) == nil || find(objs, "Secret", mesh.WebhookTLSSecret) == nil {
		t.Errorf("no webhook configuration %s or Secret %s", mesh.WebhookConfigName, mesh.WebhookTLSSecret)
	}
	checkRBAC(t, objs)
	gw := find(objs, "Deployment", mesh.EgressGatewayService)
	if (gw != nil) != (file == "egress-gateway-values.yaml") {
		t.Errorf("egress gateway Deployment present=%v for %s", gw != nil, file)
	}
	if gw != nil {
		gd := toTyped[appsv1.Deployment](t, gw)
		checkPodSecurity(t, &gd.Spec.Template.Spec)
		if !slices.Contains(containerArgs(t, gd, "weft-egress-gateway"), "--mode="+mesh.ModeEgressGateway) {
			t.Errorf("egress gateway not in --mode=%s", mesh.ModeEgressGateway)
		}
		if find(objs, "Service", mesh.EgressGatewayService) == nil || find(objs, "PodDisruptionBudget", mesh.EgressGatewayService) == nil {
			t.Errorf("egress gateway without Service or PDB")
		}
	}
	if file == "tracing-values.yaml" {
		cm := toTyped[corev1.ConfigMap](t, find(objs, "ConfigMap", mesh.MeshConfigMapName))
		if !strings.Contains(cm.Data[mesh.MeshConfigMapKey], `endpoint: "weft-jaeger.weft-system.svc:4318"`) {
			t.Errorf("tracing on with Jaeger: mesh config %q does not point at the in-cluster Jaeger", cm.Data[mesh.MeshConfigMapKey])
		}
	}
	if file == "external-ca-values.yaml" && !slices.Contains(args, "--ca-cert=/etc/weft/ca/tls.crt") {
		t.Errorf("external CA: args %q", args)
	}
}

func containerArgs(t *testing.T, d *appsv1.Deployment, name string) []string {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c.Args
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return nil
}

func checkPodSecurity(t *testing.T, spec *corev1.PodSpec) {
	t.Helper()
	ps := spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v: want runAsNonRoot and seccomp RuntimeDefault", ps)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: want allowPrivilegeEscalation=false, readOnlyRootFilesystem=true", c.Name)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("container %s: missing probes", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("container %s: missing resource requests", c.Name)
		}
	}
}

// checkRBAC: no wildcards, no write verbs cluster-wide except the listed
// ones, secrets only in the namespaced Role.
func checkRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		var rules []rbacv1.PolicyRule
		switch o.GetKind() {
		case "ClusterRole":
			rules = toTyped[rbacv1.ClusterRole](t, o).Rules
		case "Role":
			rules = toTyped[rbacv1.Role](t, o).Rules
		default:
			continue
		}
		for _, r := range rules {
			for _, s := range slices.Concat(r.Verbs, r.Resources, r.APIGroups) {
				if s == "*" {
					t.Errorf("%s %s: wildcard in %+v", o.GetKind(), o.GetName(), r)
				}
			}
			if o.GetKind() != "ClusterRole" {
				continue
			}
			if slices.Contains(r.Resources, "secrets") {
				t.Errorf("ClusterRole %s grants secrets cluster-wide", o.GetName())
			}
			for _, v := range r.Verbs {
				write := v != "get" && v != "list" && v != "watch"
				okWrite := (slices.Equal(r.Resources, []string{"tokenreviews"}) && v == "create") ||
					(slices.Equal(r.Resources, []string{"configmaps"}) && (v == "create" || slices.Equal(r.ResourceNames, []string{mesh.TrustBundleConfigMap})))
				if write && !okWrite {
					t.Errorf("ClusterRole %s: cluster-wide %s on %v", o.GetName(), v, r.Resources)
				}
			}
		}
	}
}

func TestSchemaRejections(t *testing.T) {
	h := newHelm(t, "")
	chart := chartDir(t)
	for _, tc := range []struct {
		name string
		set  []string
		want string // part of the message users see
	}{
		{"mtls mode", []string{"mesh.mtlsMode=LAX"}, "mtlsMode"},
		{"outbound policy", []string{"mesh.outboundPolicy=OPEN"}, "outboundPolicy"},
		{"sampling above 1", []string{"mesh.tracing.samplingRate=2"}, "samplingRate"},
		{"tracing endpoint not host:port", []string{"mesh.tracing.endpoint=http://jaeger:4318"}, "endpoint"},
		{"failure policy", []string{"webhook.failurePolicy=Maybe"}, "failurePolicy"},
		{"webhook timeout", []string{"webhook.timeoutSeconds=60"}, "timeoutSeconds"},
		{"zero replicas", []string{"controlPlane.replicas=0"}, "replicas"},
		{"bad duration", []string{"mesh.certLifetime=one day"}, "certLifetime"},
		{"unknown key (typo)", []string{"mesh.trustDomian=x"}, "trustDomian"},
		{"log level", []string{"logLevel=verbose"}, "logLevel"},
		{"bad trust domain", []string{"mesh.trustDomain=Not A Domain"}, "trustDomain"},
		{"webhook url not https", []string{"webhook.url=http://127.0.0.1:1/inject"}, "url"},
		{"HA without leader election", []string{"controlPlane.leaderElection.enabled=false"}, "needs controlPlane.leaderElection.enabled=true"},
		{"external CA without a Secret", []string{"ca.external.enabled=true"}, "needs ca.external.secretName"},
		{"dns capture not a bool", []string{"proxy.dnsCapture=yes"}, "/proxy/dnsCapture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "weft", chart, "--kube-version", kubeVersion, "--namespace", releaseNS}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, stderr, err := h.run(t.Context(), args...)
			if err == nil {
				t.Fatalf("--set %v was accepted", tc.set)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Fatalf("message does not name %q:\n%s", tc.want, stderr)
			}
			t.Logf("users see: %s", strings.TrimSpace(stderr))
		})
	}
	t.Run("wrong namespace", func(t *testing.T) {
		_, stderr, err := h.run(t.Context(), "template", "weft", chart, "--kube-version", kubeVersion, "--namespace", "default")
		if err == nil || !strings.Contains(stderr, "install into the namespace weft-system") {
			t.Fatalf("err=%v\n%s", err, stderr)
		}
	})
}
