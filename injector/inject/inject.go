package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/api/mesh"
	"github.com/weftmesh/weft/api/meshconfig"
)

// RecordVersion is the version of the Record format in weft.dev/injected.
const RecordVersion = "v1"

// Probe kinds in mesh.AppProbePath.
const (
	probeLiveness  = "livez"
	probeReadiness = "readyz"
	probeStartup   = "startupz"
)

// Skip reasons (Result.Skipped).
const (
	SkipOptedOut        = "pod opted out with label " + mesh.LabelInject + "=" + mesh.InjectDisabled
	SkipAlreadyInjected = "already injected"
	SkipHostNetwork     = "pod uses the host network"
)

// Record is what the injector did, stored as JSON in the pod's
// weft.dev/injected annotation.
type Record struct {
	Version string `json:"version"`
	// Sidecar and Init name the injected containers; Native says whether
	// the proxy is a native sidecar (restartable init container).
	Sidecar string `json:"sidecar"`
	Native  bool   `json:"native"`
	Init    string `json:"init"`
	// Volumes added to the pod.
	Volumes []string `json:"volumes"`
	// Probes rewritten to the health port, as "<container>/<kind>".
	Probes []string `json:"probes,omitempty"`
	// Capture is the effective capture configuration given to the init step.
	Capture Capture `json:"capture"`
}

// Capture is the effective capture configuration of one pod, each list
// normalised ("*" = every port, "" = none).
type Capture struct {
	IncludeInboundPorts  string `json:"includeInboundPorts"`
	ExcludeInboundPorts  string `json:"excludeInboundPorts"`
	IncludeOutboundPorts string `json:"includeOutboundPorts"`
	ExcludeOutboundPorts string `json:"excludeOutboundPorts"`
	ExcludeOutboundCIDRs string `json:"excludeOutboundCIDRs,omitempty"`
	// DNS: the app's DNS goes to the sidecar's DNS proxy.
	DNS bool `json:"dns,omitempty"`
}

// AppProbe is one original HTTP probe, as the proxy's health port calls it
// (the values of mesh.EnvAppProbes, keyed by the rewritten path).
type AppProbe struct {
	Port        int32               `json:"port"`
	Path        string              `json:"path,omitempty"`
	Scheme      corev1.URIScheme    `json:"scheme,omitempty"`
	Host        string              `json:"host,omitempty"`
	HTTPHeaders []corev1.HTTPHeader `json:"httpHeaders,omitempty"`
}

// Result of injecting one pod.
type Result struct {
	// Pod is the patched pod (a copy; the input is never modified). When
	// nothing was injected it equals the input.
	Pod *corev1.Pod
	// Patch is the RFC 6902 JSON patch from the input to Pod ("[]" when
	// nothing changed).
	Patch []byte
	// Injected says whether the sidecar was added; Skipped says why not.
	Injected bool
	Skipped  string
}

// Pod injects the sidecar into a copy of pod. It is pure: the same input
// gives the same output, byte for byte.
func Pod(pod *corev1.Pod, mc meshconfig.Config, tpl Template) (Result, error) {
	if pod == nil {
		return Result{}, fmt.Errorf("inject: nil pod")
	}
	out := pod.DeepCopy()
	skipped, err := PodTemplate(&out.ObjectMeta, &out.Spec, mc, tpl)
	if err != nil {
		return Result{}, fmt.Errorf("inject: pod %s: %w", podName(pod), err)
	}
	if skipped != "" {
		return Result{Pod: out, Patch: []byte("[]"), Skipped: skipped}, nil
	}
	patch, err := CreatePatch(pod, out)
	if err != nil {
		return Result{}, fmt.Errorf("inject: pod %s: %w", podName(pod), err)
	}
	return Result{Pod: out, Patch: patch, Injected: true}, nil
}

func podName(p *corev1.Pod) string {
	name := p.Name
	if name == "" {
		name = p.GenerateName + "*"
	}
	if p.Namespace != "" {
		return p.Namespace + "/" + name
	}
	return name
}

// PodTemplate injects the sidecar into meta and spec in place (a pod, or
// the template of a Deployment, Job, ...). It returns a non-empty reason
// when it left them alone.
func PodTemplate(meta *metav1.ObjectMeta, spec *corev1.PodSpec, mc meshconfig.Config, tpl Template) (skipped string, err error) {
	if meta.Labels[mesh.LabelInject] == mesh.InjectDisabled {
		return SkipOptedOut, nil
	}
	if _, ok := meta.Annotations[mesh.AnnotationInjected]; ok || hasContainer(spec, mesh.ContainerSidecar) || hasContainer(spec, mesh.ContainerInit) {
		return SkipAlreadyInjected, nil
	}
	if spec.HostNetwork {
		return SkipHostNetwork, nil
	}
	if err := tpl.Validate(); err != nil {
		return "", err
	}
	mc = mc.WithDefaults()

	capture, err := captureFor(meta.Annotations, tpl, mc)
	if err != nil {
		return "", err
	}
	res, err := resourcesFor(meta.Annotations, tpl)
	if err != nil {
		return "", err
	}
	var probes map[string]AppProbe
	var rewritten []string
	if meta.Annotations[mesh.AnnotationRewriteProbes] != "false" {
		probes, rewritten = rewriteProbes(spec.Containers)
	}

	proxy := proxyContainer(mc, tpl, res, probes)
	if capture.DNS {
		// The app's DNS arrives through the init step's rules.
		proxy.Args = append(proxy.Args, mesh.SidecarFlagDNSProxy)
	}
	initc := initContainer(tpl, capture)
	if tpl.LegacySidecar {
		spec.InitContainers = slices.Insert(spec.InitContainers, 0, initc)
		spec.Containers = slices.Insert(spec.Containers, 0, proxy)
	} else {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		spec.InitContainers = slices.Insert(spec.InitContainers, 0, initc, proxy)
	}
	spec.Volumes = append(spec.Volumes, volumes(tpl)...)

	rec := Record{
		Version: RecordVersion,
		Sidecar: mesh.ContainerSidecar,
		Native:  !tpl.LegacySidecar,
		Init:    mesh.ContainerInit,
		Volumes: []string{mesh.VolumeToken, mesh.VolumeTrustBundle, mesh.VolumeXtablesLock},
		Probes:  rewritten,
		Capture: capture,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("record: %w", err)
	}
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[mesh.AnnotationInjected] = string(b)
	return "", nil
}

func hasContainer(spec *corev1.PodSpec, name string) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return true
			}
		}
	}
	return false
}

// captureFor merges the template's capture defaults with the pod's
// annotations (an annotation replaces the default list) and always keeps
// the health port out of inbound capture, so kubelet probes reach it.
func captureFor(ann map[string]string, tpl Template, mc meshconfig.Config) (Capture, error) {
	pick := func(key, def string) string {
		if v, ok := ann[key]; ok {
			return v
		}
		return def
	}
	var c Capture
	var err error
	fields := []struct {
		key, def string
		star     bool
		dst      *string
	}{
		{mesh.AnnotationIncludeInboundPorts, tpl.IncludeInboundPorts, true, &c.IncludeInboundPorts},
		{mesh.AnnotationExcludeInboundPorts, tpl.ExcludeInboundPorts, false, &c.ExcludeInboundPorts},
		{mesh.AnnotationIncludeOutboundPorts, tpl.IncludeOutboundPorts, true, &c.IncludeOutboundPorts},
		{mesh.AnnotationExcludeOutboundPorts, tpl.ExcludeOutboundPorts, false, &c.ExcludeOutboundPorts},
	}
	for _, f := range fields {
		if *f.dst, err = parsePorts(pick(f.key, f.def), f.star); err != nil {
			return Capture{}, fmt.Errorf("annotation %s: %w", f.key, err)
		}
	}
	health := strconv.Itoa(mesh.PortHealth)
	if c.ExcludeInboundPorts == "" {
		c.ExcludeInboundPorts = health
	} else if c.ExcludeInboundPorts, err = parsePorts(health+","+c.ExcludeInboundPorts, false); err != nil {
		return Capture{}, fmt.Errorf("annotation %s: %w", mesh.AnnotationExcludeInboundPorts, err)
	}
	if c.ExcludeOutboundCIDRs, err = parseCIDRs(pick(mesh.AnnotationExcludeOutboundCIDRs, tpl.ExcludeOutboundCIDRs)); err != nil {
		return Capture{}, fmt.Errorf("annotation %s: %w", mesh.AnnotationExcludeOutboundCIDRs, err)
	}
	c.DNS = mc.DNSCapture
	if v, ok := ann[mesh.AnnotationDNSCapture]; ok {
		if c.DNS, err = strconv.ParseBool(v); err != nil {
			return Capture{}, fmt.Errorf("annotation %s: %q is not true or false", mesh.AnnotationDNSCapture, v)
		}
	}
	return c, nil
}

// resourcesFor builds the proxy's resources: the template's, each replaced
// by the pod's annotation when present.
func resourcesFor(ann map[string]string, tpl Template) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	fields := []struct {
		key, def string
		list     *corev1.ResourceList
		name     corev1.ResourceName
	}{
		{mesh.AnnotationProxyCPU, tpl.ProxyCPU, &r.Requests, corev1.ResourceCPU},
		{mesh.AnnotationProxyMemory, tpl.ProxyMemory, &r.Requests, corev1.ResourceMemory},
		{mesh.AnnotationProxyCPULimit, tpl.ProxyCPULimit, &r.Limits, corev1.ResourceCPU},
		{mesh.AnnotationProxyMemoryLimit, tpl.ProxyMemoryLimit, &r.Limits, corev1.ResourceMemory},
	}
	for _, f := range fields {
		v, ok := ann[f.key]
		if !ok {
			v = f.def
		}
		if v == "" {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return r, fmt.Errorf("annotation %s: %q: %w", f.key, v, err)
		}
		if *f.list == nil {
			*f.list = corev1.ResourceList{}
		}
		(*f.list)[f.name] = q
	}
	for name, limit := range r.Limits {
		if req, ok := r.Requests[name]; ok && req.Cmp(limit) > 0 {
			return r, fmt.Errorf("proxy %s request %s is above its limit %s", name, req.String(), limit.String())
		}
	}
	return r, nil
}

// rewriteProbes points every HTTP probe of the app containers at the
// proxy's health port and returns the originals keyed by the new path, and
// the rewritten probes as "<container>/<kind>". A probe on a named port
// the container does not declare is left alone (the kubelet would fail it
// anyway, and the proxy could not call it).
func rewriteProbes(cs []corev1.Container) (map[string]AppProbe, []string) {
	var probes map[string]AppProbe
	var names []string
	for i := range cs {
		c := &cs[i]
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
		}{{probeLiveness, c.LivenessProbe}, {probeReadiness, c.ReadinessProbe}, {probeStartup, c.StartupProbe}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				continue
			}
			get := p.probe.HTTPGet
			port, ok := resolvePort(get.Port, c.Ports)
			if !ok || port == mesh.PortHealth {
				continue
			}
			path := mesh.AppProbePath(c.Name, p.kind)
			if probes == nil {
				probes = map[string]AppProbe{}
			}
			probes[path] = AppProbe{Port: port, Path: get.Path, Scheme: get.Scheme, Host: get.Host, HTTPHeaders: get.HTTPHeaders}
			names = append(names, c.Name+"/"+p.kind)
			p.probe.HTTPGet = &corev1.HTTPGetAction{
				Path:   path,
				Port:   intstr.FromInt32(mesh.PortHealth),
				Scheme: corev1.URISchemeHTTP,
			}
		}
	}
	return probes, names
}

func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0 && p.IntVal <= 65535
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func initContainer(tpl Template, c Capture) corev1.Container {
	args := []string{
		mesh.SidecarInitCommand,
		mesh.InitFlagProxyUID + "=" + strconv.Itoa(mesh.ProxyUID),
		mesh.InitFlagInboundPort + "=" + strconv.Itoa(mesh.PortInbound),
		mesh.InitFlagOutboundPort + "=" + strconv.Itoa(mesh.PortOutbound),
		mesh.InitFlagIncludeInboundPorts + "=" + c.IncludeInboundPorts,
		mesh.InitFlagExcludeInboundPorts + "=" + c.ExcludeInboundPorts,
		mesh.InitFlagIncludeOutboundPorts + "=" + c.IncludeOutboundPorts,
		mesh.InitFlagExcludeOutboundPorts + "=" + c.ExcludeOutboundPorts,
	}
	if c.ExcludeOutboundCIDRs != "" {
		args = append(args, mesh.InitFlagExcludeOutboundCIDRs+"="+c.ExcludeOutboundCIDRs)
	}
	if c.DNS {
		args = append(args, mesh.InitFlagCaptureDNS+"=true")
	}
	root := int64(0)
	return corev1.Container{
		Name:            mesh.ContainerInit,
		Image:           tpl.ProxyImage,
		ImagePullPolicy: tpl.ImagePullPolicy,
		Args:            args,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("10m"),
			corev1.ResourceMemory: resource.MustParse("16Mi"),
		}},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsNonRoot:             new(false),
			Privileged:               new(false),
			AllowPrivilegeEscalation: new(false),
			ReadOnlyRootFilesystem:   new(true),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
		// iptables-legacy's lock file (/run/xtables.lock) on a read-only root.
		VolumeMounts:             []corev1.VolumeMount{{Name: mesh.VolumeXtablesLock, MountPath: mesh.XtablesLockDir}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func proxyContainer(mc meshconfig.Config, tpl Template, res corev1.ResourceRequirements, probes map[string]AppProbe) corev1.Container {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
	}
	env := []corev1.EnvVar{
		{Name: mesh.EnvWorkload, ValueFrom: field("metadata.name")},
		{Name: mesh.EnvNamespace, ValueFrom: field("metadata.namespace")},
		{Name: mesh.EnvServiceAccount, ValueFrom: field("spec.serviceAccountName")},
		{Name: mesh.EnvPodIP, ValueFrom: field("status.podIP")},
		{Name: mesh.EnvTrustDomain, Value: mc.TrustDomain},
	}
	if len(probes) > 0 {
		b, _ := json.Marshal(probes) // map of plain structs: cannot fail
		env = append(env, corev1.EnvVar{Name: mesh.EnvAppProbes, Value: string(b)})
	}
	logLevel := tpl.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	ref := func(name string) string { return "$(" + name + ")" }
	health := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: mesh.HealthReadyPath, Port: intstr.FromInt32(mesh.PortHealth), Scheme: corev1.URISchemeHTTP,
			}},
			TimeoutSeconds:   3,
			PeriodSeconds:    period,
			FailureThreshold: failures,
		}
	}
	uid := int64(mesh.ProxyUID)
	return corev1.Container{
		Name:            mesh.ContainerSidecar,
		Image:           tpl.ProxyImage,
		ImagePullPolicy: tpl.ImagePullPolicy,
		Args: []string{
			"--workload=" + ref(mesh.EnvWorkload),
			"--namespace=" + ref(mesh.EnvNamespace),
			"--service-account=" + ref(mesh.EnvServiceAccount),
			"--ip=" + ref(mesh.EnvPodIP),
			// Pod mode: traffic arrives through the init step's rules.
			mesh.SidecarCaptureFlag,
			"--xds-address=" + tpl.XDSAddress,
			"--trust-domain=" + ref(mesh.EnvTrustDomain),
			"--ca-bundle=" + mesh.TrustBundleDir + "/" + mesh.TrustBundleKey,
			"--token-file=" + mesh.TokenDir + "/" + mesh.TokenFile,
			"--log-level=" + logLevel,
		},
		Env: env,
		Ports: []corev1.ContainerPort{
			{Name: "weft-health", ContainerPort: mesh.PortHealth, Protocol: corev1.ProtocolTCP},
		},
		Resources: res,
		// Native sidecar: the pod's other init containers and its
		// containers start once this passes (up to 10 minutes).
		StartupProbe:   health(1, 600),
		ReadinessProbe: health(2, 3),
		VolumeMounts: []corev1.VolumeMount{
			{Name: mesh.VolumeToken, MountPath: mesh.TokenDir, ReadOnly: true},
			{Name: mesh.VolumeTrustBundle, MountPath: mesh.TrustBundleDir, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			RunAsNonRoot:             new(true),
			Privileged:               new(false),
			AllowPrivilegeEscalation: new(false),
			ReadOnlyRootFilesystem:   new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func volumes(tpl Template) []corev1.Volume {
	exp := tpl.TokenExpirationSeconds
	lockSize := resource.MustParse("1Mi") // one empty lock file
	return []corev1.Volume{
		{Name: mesh.VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: tpl.TokenAudience, ExpirationSeconds: &exp, Path: mesh.TokenFile,
			}}},
		}}},
		{Name: mesh.VolumeTrustBundle, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: tpl.TrustBundleConfigMap},
		}}},
		{Name: mesh.VolumeXtablesLock, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &lockSize,
		}}},
	}
}
